-- Interview understanding: question dimensions, ratings, quality verdicts and per-model statistics
-- with their uncertainty. Tables are keyed by job_id and rewritten whole by each job; the views
-- read the latest succeeded job of each study, like those of 002.

-- insight_runs: how a job's insights were made (which estimator, which correction, whether
-- low-quality interviews were left out of the statistics).
CREATE TABLE insight_runs (
    job_id              uuid PRIMARY KEY REFERENCES jobs ON DELETE CASCADE,
    rating_estimator    text NOT NULL,            -- anchor-sentiment-v1, or llm:<model> (+ offline fallback)
    correction          text NOT NULL,            -- bh (Benjamini–Hochberg) | holm
    alpha               double precision NOT NULL,
    low_quality_included boolean NOT NULL,
    interviews          integer NOT NULL,
    excluded            integer NOT NULL
);

-- unit_insights: per answer, the dimension its question asks about and the answer's sentiment.
CREATE TABLE unit_insights (
    job_id               uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    unit_id              text NOT NULL REFERENCES units ON DELETE CASCADE,
    dimension            text NOT NULL CHECK (dimension IN ('understanding', 'needs', 'credibility',
                             'satisfaction', 'improvement', 'overall', 'other')),
    dimension_confidence real NOT NULL,           -- classifier probability; 1 when the LLM said so
    dimension_source     text NOT NULL,           -- prototype | llm
    sentiment            real NOT NULL,           -- 1-5, 3 = neutral (offline anchor sentiment)
    PRIMARY KEY (job_id, unit_id)
);

-- ratings: per interview and dimension, a 1-5 score and its source.
CREATE TABLE ratings (
    job_id        uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    interview_id  text NOT NULL REFERENCES interviews ON DELETE CASCADE,
    session_model text NOT NULL,
    dimension     text NOT NULL,
    score         double precision NOT NULL CHECK (score BETWEEN 1 AND 5),
    source        text NOT NULL CHECK (source IN ('explicit', 'llm', 'estimate')),
    evidence      text,                           -- the answer (or quote) the score rests on
    unit_id       text,
    PRIMARY KEY (job_id, interview_id, dimension)
);

-- quality_verdicts: one per interview; reasons are short codes (see miner/quality.py).
CREATE TABLE quality_verdicts (
    job_id        uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    interview_id  text NOT NULL REFERENCES interviews ON DELETE CASCADE,
    session_model text NOT NULL,
    low_quality   boolean NOT NULL,
    reasons       text[] NOT NULL,
    details       jsonb NOT NULL,
    PRIMARY KEY (job_id, interview_id)
);

CREATE TABLE engagement_stats (
    job_id                  uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    session_model           text NOT NULL,
    interviews              integer NOT NULL,     -- included in the statistics
    excluded                integer NOT NULL,     -- low quality, left out
    chat_rounds             double precision NOT NULL,
    user_words_per_turn     double precision,
    model_words_per_turn    double precision,
    answer_words            double precision NOT NULL,
    session_seconds         double precision,     -- NULL when the logs have no timestamps
    session_seconds_median  double precision,
    interview_seconds       double precision,
    interview_seconds_median double precision,
    PRIMARY KEY (job_id, session_model)
);

CREATE TABLE rating_stats (
    job_id        uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    session_model text NOT NULL,
    dimension     text NOT NULL,
    n             integer NOT NULL,
    mean          double precision NOT NULL,
    ci_low        double precision NOT NULL,     -- 95% percentile bootstrap interval of the mean
    ci_high       double precision NOT NULL,
    n_explicit    integer NOT NULL,
    PRIMARY KEY (job_id, session_model, dimension)
);

CREATE TABLE prevalence_stats (
    job_id          uuid NOT NULL,
    theme_id        integer NOT NULL,
    session_model   text NOT NULL,
    interviews_with integer NOT NULL,            -- the model's interviews with an answer in the theme
    interviews      integer NOT NULL,            -- all the model's (included) interviews
    prevalence      double precision NOT NULL,
    ci_low          double precision NOT NULL,   -- 95% Wilson interval
    ci_high         double precision NOT NULL,
    rest_prevalence double precision,            -- the same share over all other models
    difference      double precision,            -- prevalence - rest_prevalence
    cohens_h        double precision,            -- effect size of that difference
    p_value         double precision,            -- Fisher exact, this model vs the rest
    p_adjusted      double precision,            -- over all theme × model tests of the job
    significant     boolean NOT NULL,            -- p_adjusted < alpha
    PRIMARY KEY (job_id, theme_id, session_model),
    FOREIGN KEY (job_id, theme_id) REFERENCES themes ON DELETE CASCADE
);

CREATE TABLE prevalence_tests (
    job_id      uuid NOT NULL,
    theme_id    integer NOT NULL,
    statistic   double precision NOT NULL,       -- chi-square over models × (with, without)
    dof         integer NOT NULL,
    p_value     double precision NOT NULL,
    p_adjusted  double precision NOT NULL,       -- over all themes of the job
    cramers_v   double precision NOT NULL,
    significant boolean NOT NULL,
    PRIMARY KEY (job_id, theme_id),
    FOREIGN KEY (job_id, theme_id) REFERENCES themes ON DELETE CASCADE
);

CREATE TABLE correlation_stats (
    job_id      uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    dimension_a text NOT NULL,
    dimension_b text NOT NULL,
    spearman    double precision,                -- NULL when fewer than 3 pairs or no variation
    p_value     double precision,
    n           integer NOT NULL,
    PRIMARY KEY (job_id, dimension_a, dimension_b)
);

CREATE TABLE sentiment_stats (
    job_id         uuid NOT NULL,
    theme_id       integer NOT NULL,
    session_model  text NOT NULL,
    answers        integer NOT NULL,
    positive_share double precision NOT NULL,    -- answers with sentiment >= 4
    negative_share double precision NOT NULL,    -- answers with sentiment <= 2
    mean_sentiment double precision NOT NULL,
    bipolar        boolean NOT NULL,             -- both shares >= 0.25 over >= 10 answers
    PRIMARY KEY (job_id, theme_id, session_model),
    FOREIGN KEY (job_id, theme_id) REFERENCES themes ON DELETE CASCADE
);

-- model_ratings: each model's mean rating per dimension with its 95% bootstrap CI and n
-- (low-quality interviews left out unless the job said otherwise).
CREATE VIEW model_ratings AS
SELECT l.study, r.session_model, r.dimension, r.mean, r.ci_low, r.ci_high, r.n, r.n_explicit,
       ir.rating_estimator, l.job_id
FROM latest_jobs l
JOIN rating_stats r USING (job_id)
JOIN insight_runs ir USING (job_id);

-- interview_ratings: every interview's score per dimension, its source and evidence.
CREATE VIEW interview_ratings AS
SELECT l.study, r.interview_id, i.external_id, r.session_model, r.dimension, r.score, r.source,
       r.evidence, coalesce(q.low_quality, false) AS low_quality, l.job_id
FROM latest_jobs l
JOIN ratings r USING (job_id)
JOIN interviews i USING (interview_id)
LEFT JOIN quality_verdicts q ON q.job_id = r.job_id AND q.interview_id = r.interview_id;

-- theme_prevalence: per theme × model, the share of the model's interviews touching the theme
-- (Wilson CI) against the other models, with effect size and adjusted p-value. "Which themes
-- are significantly more common for model X": WHERE session_model = 'X' AND more_common.
CREATE VIEW theme_prevalence AS
SELECT l.study, p.theme_id, t.label, p.session_model, p.interviews_with, p.interviews, p.prevalence,
       p.ci_low, p.ci_high, p.rest_prevalence, p.difference, p.cohens_h, p.p_value, p.p_adjusted,
       p.significant, (p.significant AND p.difference > 0) AS more_common,
       (p.significant AND p.difference < 0) AS less_common, ir.correction, l.job_id
FROM latest_jobs l
JOIN prevalence_stats p USING (job_id)
JOIN themes t USING (job_id, theme_id)
JOIN insight_runs ir USING (job_id);

-- theme_differences: per theme, whether its prevalence differs between models at all.
CREATE VIEW theme_differences AS
SELECT l.study, x.theme_id, t.label, x.statistic AS chi_square, x.dof, x.p_value, x.p_adjusted,
       x.cramers_v, x.significant, ir.correction, l.job_id
FROM latest_jobs l
JOIN prevalence_tests x USING (job_id)
JOIN themes t USING (job_id, theme_id)
JOIN insight_runs ir USING (job_id);

-- interview_quality: every interview's verdict and reasons.
CREATE VIEW interview_quality AS
SELECT l.study, q.interview_id, i.external_id, q.session_model, q.low_quality, q.reasons, q.details,
       l.job_id
FROM latest_jobs l
JOIN quality_verdicts q USING (job_id)
JOIN interviews i USING (interview_id);

-- quality_exclusions: how many interviews were excluded and why: one row per reason (an
-- interview with two reasons counts under both) plus one row 'any' with the total excluded.
CREATE VIEW quality_exclusions AS
SELECT l.study, reason, count(*) AS interviews,
       count(*)::double precision / max(ir.interviews) AS share, bool_or(NOT ir.low_quality_included) AS excluded_from_statistics,
       l.job_id
FROM latest_jobs l
JOIN insight_runs ir USING (job_id)
JOIN quality_verdicts q USING (job_id)
CROSS JOIN LATERAL unnest(q.reasons || CASE WHEN q.low_quality THEN ARRAY['any'] ELSE ARRAY[]::text[] END) AS reason
GROUP BY l.study, reason, l.job_id;

-- model_engagement: per model, interviews, chat rounds, words per turn, durations (seconds).
CREATE VIEW model_engagement AS
SELECT l.study, e.session_model, e.interviews, e.excluded, e.chat_rounds, e.user_words_per_turn,
       e.model_words_per_turn, e.answer_words, e.session_seconds, e.session_seconds_median,
       e.interview_seconds, e.interview_seconds_median, l.job_id
FROM latest_jobs l
JOIN engagement_stats e USING (job_id);

-- dimension_correlations: the Spearman matrix between dimensions, both orders listed.
CREATE VIEW dimension_correlations AS
SELECT l.study, c.dimension_a, c.dimension_b, c.spearman, c.p_value, c.n, l.job_id
FROM latest_jobs l JOIN correlation_stats c USING (job_id)
UNION ALL
SELECT l.study, c.dimension_b, c.dimension_a, c.spearman, c.p_value, c.n, l.job_id
FROM latest_jobs l JOIN correlation_stats c USING (job_id);

-- theme_sentiment: per theme × model, shares of clearly positive and negative answers; bipolar
-- marks a split opinion (sizeable shares both ways).
CREATE VIEW theme_sentiment AS
SELECT l.study, s.theme_id, t.label, s.session_model, s.answers, s.positive_share, s.negative_share,
       s.mean_sentiment, s.bipolar, l.job_id
FROM latest_jobs l
JOIN sentiment_stats s USING (job_id)
JOIN themes t USING (job_id, theme_id);

-- answer_dimensions: every answer with its question's dimension and its sentiment.
CREATE VIEW answer_dimensions AS
SELECT l.study, u.interview_id, u.session_model, u.unit_id, u.question, u.answer, x.dimension,
       x.dimension_confidence, x.dimension_source, x.sentiment, l.job_id
FROM latest_jobs l
JOIN unit_insights x USING (job_id)
JOIN units u USING (unit_id);
