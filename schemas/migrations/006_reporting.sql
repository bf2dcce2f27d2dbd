-- Reporting: the read-only contract people query with SQL and hand on. schemas/views.md is its
-- reference page (rendered from the COMMENTs below by `python -m miner.contract --write`);
-- schemas/contract.json pins every view's columns and types; tests/test_contract.py compares.
--
-- The views live in schema `reporting`. A reader role (`miner db grant-reader NAME`) gets USAGE on
-- that schema and SELECT on its views, nothing in `public`. The views run with their owner's
-- rights (no security_invoker), so they read raw tables the reader cannot.
--
-- Privacy: text shown is the scrubbed copy (scrubbed_units), never the raw answer. A theme ×
-- model cell backed by 1..K-1 distinct interviews is suppressed: its row stays, flagged
-- `suppressed`, with NULL numbers and no text; K = reporting_settings.min_interviews_per_cell.
-- A cell of 0 interviews singles nobody out and shows its zero. A theme under K interviews in
-- all has its label, keywords and summary withheld too.

CREATE SCHEMA reporting;
COMMENT ON SCHEMA reporting IS 'miner reporting views: the documented read-only contract (schemas/views.md)';

-- The privacy threshold K, written from MINER_MIN_INTERVIEWS_PER_CELL by the CLI and the workers
-- (a view cannot read environment variables). Exactly one row.
CREATE TABLE reporting_settings (
    singleton               boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    min_interviews_per_cell integer NOT NULL DEFAULT 5 CHECK (min_interviews_per_cell >= 1),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
INSERT INTO reporting_settings DEFAULT VALUES;

-- Answer units with identifiers replaced by placeholders (miner/scrub.py), written when a job
-- fixes its units. A unit with no row here shows NULL text in the views, never its raw text.
CREATE TABLE scrubbed_units (
    unit_id     text PRIMARY KEY REFERENCES units ON DELETE CASCADE,
    question    text NOT NULL,
    answer      text NOT NULL,
    scrubbed_at timestamptz NOT NULL DEFAULT now()
);

-- reporting_cells (internal, not granted): every theme × model cell of every job with its
-- suppression verdict, the one place the rule is written down.
CREATE VIEW reporting_cells AS
SELECT s.job_id, s.theme_id, s.session_model, s.answers, s.interviews, s.share,
       (s.interviews BETWEEN 1 AND k.k - 1
        OR coalesce(p.interviews_with BETWEEN 1 AND k.k - 1, false)) AS suppressed,
       t.interviews < k.k AS theme_suppressed
FROM theme_model_stats s
CROSS JOIN (SELECT min_interviews_per_cell AS k FROM reporting_settings) k
JOIN themes t USING (job_id, theme_id)
LEFT JOIN prevalence_stats p USING (job_id, theme_id, session_model);

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.privacy AS
SELECT min_interviews_per_cell, updated_at FROM reporting_settings;
COMMENT ON VIEW reporting.privacy IS 'The privacy threshold K every other view applies.';
COMMENT ON COLUMN reporting.privacy.min_interviews_per_cell IS
    'K: a theme × model cell backed by 1..K-1 distinct interviews is suppressed';
COMMENT ON COLUMN reporting.privacy.updated_at IS 'when K was last written (from MINER_MIN_INTERVIEWS_PER_CELL)';

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.studies AS
SELECT l.study, l.job_id, j.kind, l.finished_at,
       (j.counts->>'interviews')::integer AS interviews,
       (j.counts->>'units')::integer      AS units,
       (SELECT count(*) FROM themes t WHERE t.job_id = l.job_id)::integer AS themes,
       (SELECT array_agg(DISTINCT s.session_model ORDER BY s.session_model)
          FROM theme_model_stats s WHERE s.job_id = l.job_id) AS session_models
FROM latest_jobs l
JOIN jobs j USING (job_id);
COMMENT ON VIEW reporting.studies IS
    'One row per study: its published job (the latest succeeded one), which every other view reads.';
COMMENT ON COLUMN reporting.studies.study IS 'study name';
COMMENT ON COLUMN reporting.studies.job_id IS 'the published job';
COMMENT ON COLUMN reporting.studies.kind IS 'analyze (on request) or nightly (scheduled run)';
COMMENT ON COLUMN reporting.studies.finished_at IS 'when that job finished';
COMMENT ON COLUMN reporting.studies.interviews IS 'interviews the job analysed';
COMMENT ON COLUMN reporting.studies.units IS 'answer units the job analysed';
COMMENT ON COLUMN reporting.studies.themes IS 'themes found';
COMMENT ON COLUMN reporting.studies.session_models IS 'session models in the study, sorted';

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.themes AS
SELECT l.study, t.theme_id,
       CASE WHEN NOT c.theme_suppressed THEN t.label END    AS label,
       CASE WHEN NOT c.theme_suppressed THEN t.summary END  AS summary,
       CASE WHEN NOT c.theme_suppressed THEN o.polarity END AS polarity,
       CASE WHEN NOT c.theme_suppressed THEN t.keywords END AS keywords,
       t.labeller,
       CASE WHEN NOT c.theme_suppressed THEN t.answers END    AS answers,
       CASE WHEN NOT c.theme_suppressed THEN t.interviews END AS interviews,
       CASE WHEN NOT c.theme_suppressed THEN x.statistic END  AS chi_square,
       CASE WHEN NOT c.theme_suppressed THEN x.p_adjusted END AS p_adjusted,
       CASE WHEN NOT c.theme_suppressed THEN x.cramers_v END  AS cramers_v,
       CASE WHEN NOT c.theme_suppressed THEN x.significant END AS models_differ,
       c.theme_suppressed AS suppressed,
       c.suppressed_cells,
       l.job_id
FROM latest_jobs l
JOIN themes t USING (job_id)
JOIN (SELECT job_id, theme_id, bool_or(theme_suppressed) AS theme_suppressed,
             count(*) FILTER (WHERE suppressed)::integer AS suppressed_cells
      FROM reporting_cells GROUP BY job_id, theme_id) c USING (job_id, theme_id)
LEFT JOIN theme_opinions o USING (job_id, theme_id)
LEFT JOIN prevalence_tests x USING (job_id, theme_id);
COMMENT ON VIEW reporting.themes IS
    'One row per theme of the published job: label, summary, polarity, size, and whether models differ on it.';
COMMENT ON COLUMN reporting.themes.study IS 'study name';
COMMENT ON COLUMN reporting.themes.theme_id IS 'theme id, stable over runs (see theme_lineage)';
COMMENT ON COLUMN reporting.themes.label IS 'short label; NULL when the theme is suppressed';
COMMENT ON COLUMN reporting.themes.summary IS 'a few sentences on the theme (LLM labeller only, else NULL)';
COMMENT ON COLUMN reporting.themes.polarity IS 'positive, negative, mixed or neutral (LLM labeller only, else NULL)';
COMMENT ON COLUMN reporting.themes.keywords IS 'top c-TF-IDF phrases of the theme''s answers';
COMMENT ON COLUMN reporting.themes.labeller IS 'who produced the label: extractive, or the LLM';
COMMENT ON COLUMN reporting.themes.answers IS 'answers in the theme, all models';
COMMENT ON COLUMN reporting.themes.interviews IS 'distinct interviews behind those answers';
COMMENT ON COLUMN reporting.themes.chi_square IS
    'chi-square statistic of the theme''s prevalence across all models (NULL until statistics ran)';
COMMENT ON COLUMN reporting.themes.p_adjusted IS 'its p-value, adjusted over all themes of the job';
COMMENT ON COLUMN reporting.themes.cramers_v IS 'effect size of the difference between models (0..1)';
COMMENT ON COLUMN reporting.themes.models_differ IS 'p_adjusted below the job''s alpha: models differ on this theme';
COMMENT ON COLUMN reporting.themes.suppressed IS 'true when the whole theme has fewer than K interviews';
COMMENT ON COLUMN reporting.themes.suppressed_cells IS 'how many of its theme × model cells are suppressed';
COMMENT ON COLUMN reporting.themes.job_id IS 'the published job';

-- ---------------------------------------------------------------------------------------------
-- Keeps public.theme_by_model's leading columns (study … share, keywords, labeller, job_id).
CREATE VIEW reporting.theme_by_model AS
SELECT l.study, c.theme_id,
       CASE WHEN NOT c.theme_suppressed THEN t.label END AS label,
       c.session_model,
       CASE WHEN NOT c.suppressed THEN c.answers END    AS answers,
       CASE WHEN NOT c.suppressed THEN c.interviews END AS interviews,
       CASE WHEN NOT c.suppressed THEN c.share END      AS share,
       CASE WHEN NOT c.theme_suppressed THEN t.keywords END AS keywords,
       t.labeller, l.job_id,
       c.suppressed,
       CASE WHEN NOT c.suppressed THEN p.prevalence END      AS prevalence,
       CASE WHEN NOT c.suppressed THEN p.ci_low END          AS ci_low,
       CASE WHEN NOT c.suppressed THEN p.ci_high END         AS ci_high,
       CASE WHEN NOT c.suppressed THEN p.rest_prevalence END AS rest_prevalence,
       CASE WHEN NOT c.suppressed THEN p.difference END      AS difference,
       CASE WHEN NOT c.suppressed THEN p.cohens_h END        AS cohens_h,
       CASE WHEN NOT c.suppressed THEN p.p_value END         AS p_value,
       CASE WHEN NOT c.suppressed THEN p.p_adjusted END      AS p_adjusted,
       CASE WHEN NOT c.suppressed THEN p.significant END     AS significant,
       CASE WHEN NOT c.suppressed THEN p.significant AND p.difference > 0 END AS more_common,
       CASE WHEN NOT c.suppressed THEN p.significant AND p.difference < 0 END AS less_common
FROM latest_jobs l
JOIN reporting_cells c USING (job_id)
JOIN themes t USING (job_id, theme_id)
LEFT JOIN prevalence_stats p USING (job_id, theme_id, session_model);
COMMENT ON VIEW reporting.theme_by_model IS
    'Per theme × session model: answers and share, the share of the model''s interviews touching the theme '
    'with its 95% CI, and a one-vs-rest test; small cells suppressed.';
COMMENT ON COLUMN reporting.theme_by_model.study IS 'study name';
COMMENT ON COLUMN reporting.theme_by_model.theme_id IS 'theme id';
COMMENT ON COLUMN reporting.theme_by_model.label IS 'theme label; NULL when the whole theme is suppressed';
COMMENT ON COLUMN reporting.theme_by_model.session_model IS 'the model the interviewed people had used';
COMMENT ON COLUMN reporting.theme_by_model.answers IS 'this model''s answers in the theme';
COMMENT ON COLUMN reporting.theme_by_model.interviews IS 'distinct interviews behind them';
COMMENT ON COLUMN reporting.theme_by_model.share IS
    'answers / all of this model''s answers in the job (unthemed answers included)';
COMMENT ON COLUMN reporting.theme_by_model.keywords IS 'top c-TF-IDF phrases of the theme';
COMMENT ON COLUMN reporting.theme_by_model.labeller IS 'who produced the label';
COMMENT ON COLUMN reporting.theme_by_model.job_id IS 'the published job';
COMMENT ON COLUMN reporting.theme_by_model.suppressed IS
    'true when 1..K-1 distinct interviews back the cell: every number of the row is NULL';
COMMENT ON COLUMN reporting.theme_by_model.prevalence IS
    'share of the model''s interviews (low-quality ones left out) with an answer in the theme';
COMMENT ON COLUMN reporting.theme_by_model.ci_low IS 'lower bound of prevalence''s 95% Wilson interval';
COMMENT ON COLUMN reporting.theme_by_model.ci_high IS 'upper bound of prevalence''s 95% Wilson interval';
COMMENT ON COLUMN reporting.theme_by_model.rest_prevalence IS 'the same share over all other models';
COMMENT ON COLUMN reporting.theme_by_model.difference IS 'prevalence - rest_prevalence';
COMMENT ON COLUMN reporting.theme_by_model.cohens_h IS 'effect size of that difference';
COMMENT ON COLUMN reporting.theme_by_model.p_value IS 'Fisher exact test, this model against the rest';
COMMENT ON COLUMN reporting.theme_by_model.p_adjusted IS
    'p_value adjusted over all theme × model tests of the job (Benjamini–Hochberg or Holm)';
COMMENT ON COLUMN reporting.theme_by_model.significant IS 'p_adjusted below the job''s alpha (0.05)';
COMMENT ON COLUMN reporting.theme_by_model.more_common IS 'significant and more common for this model than the rest';
COMMENT ON COLUMN reporting.theme_by_model.less_common IS 'significant and less common for this model than the rest';

-- ---------------------------------------------------------------------------------------------
-- Newcombe's hybrid score interval of a difference of two proportions, from the stored Wilson
-- intervals (good at small and zero counts, unlike the Wald interval).
CREATE VIEW reporting.theme_model_pairs AS
SELECT a.study, a.theme_id, a.label, a.session_model AS model_a, b.session_model AS model_b,
       a.prevalence AS prevalence_a, b.prevalence AS prevalence_b,
       a.prevalence - b.prevalence AS difference,
       a.prevalence - b.prevalence
         - sqrt((a.prevalence - a.ci_low) ^ 2 + (b.ci_high - b.prevalence) ^ 2) AS difference_ci_low,
       a.prevalence - b.prevalence
         + sqrt((a.ci_high - a.prevalence) ^ 2 + (b.prevalence - b.ci_low) ^ 2) AS difference_ci_high,
       a.suppressed OR b.suppressed AS suppressed,
       a.job_id
FROM reporting.theme_by_model a
JOIN reporting.theme_by_model b ON b.job_id = a.job_id AND b.theme_id = a.theme_id
                                AND b.session_model <> a.session_model;
COMMENT ON VIEW reporting.theme_model_pairs IS
    'Per theme and ordered pair of models: the difference in prevalence with its 95% interval '
    '(Newcombe). A theme separates A from B when the interval excludes 0. Not adjusted for multiple comparisons.';
COMMENT ON COLUMN reporting.theme_model_pairs.study IS 'study name';
COMMENT ON COLUMN reporting.theme_model_pairs.theme_id IS 'theme id';
COMMENT ON COLUMN reporting.theme_model_pairs.label IS 'theme label; NULL when the whole theme is suppressed';
COMMENT ON COLUMN reporting.theme_model_pairs.model_a IS 'first model';
COMMENT ON COLUMN reporting.theme_model_pairs.model_b IS 'second model';
COMMENT ON COLUMN reporting.theme_model_pairs.prevalence_a IS 'share of model_a''s interviews touching the theme';
COMMENT ON COLUMN reporting.theme_model_pairs.prevalence_b IS 'share of model_b''s interviews touching the theme';
COMMENT ON COLUMN reporting.theme_model_pairs.difference IS 'prevalence_a - prevalence_b';
COMMENT ON COLUMN reporting.theme_model_pairs.difference_ci_low IS 'lower bound of its 95% interval';
COMMENT ON COLUMN reporting.theme_model_pairs.difference_ci_high IS 'upper bound of its 95% interval';
COMMENT ON COLUMN reporting.theme_model_pairs.suppressed IS 'either cell is suppressed: numbers are NULL';
COMMENT ON COLUMN reporting.theme_model_pairs.job_id IS 'the published job';

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.theme_evidence AS
SELECT l.study, c.theme_id, CASE WHEN NOT c.theme_suppressed THEN t.label END AS label,
       c.session_model, q.rank AS quote_rank, u.interview_id, a.unit_id, su.question, su.answer,
       false AS suppressed, l.job_id
FROM latest_jobs l
JOIN reporting_cells c USING (job_id)
JOIN themes t USING (job_id, theme_id)
JOIN assignments a ON a.job_id = c.job_id AND a.theme_id = c.theme_id
JOIN units u ON u.unit_id = a.unit_id AND u.session_model = c.session_model
LEFT JOIN scrubbed_units su ON su.unit_id = a.unit_id
LEFT JOIN theme_quotes q ON q.job_id = c.job_id AND q.theme_id = c.theme_id AND q.unit_id = a.unit_id
WHERE NOT c.suppressed
UNION ALL
SELECT l.study, c.theme_id, CASE WHEN NOT c.theme_suppressed THEN t.label END, c.session_model,
       NULL::integer, NULL::text, NULL::text, NULL::text, NULL::text, true, l.job_id
FROM latest_jobs l
JOIN reporting_cells c USING (job_id)
JOIN themes t USING (job_id, theme_id)
WHERE c.suppressed;
COMMENT ON VIEW reporting.theme_evidence IS
    'Theme → answer (scrubbed) → interview → session model, for the published job. A suppressed cell '
    'is one row with suppressed = true and no answer, interview or unit.';
COMMENT ON COLUMN reporting.theme_evidence.study IS 'study name';
COMMENT ON COLUMN reporting.theme_evidence.theme_id IS 'theme id';
COMMENT ON COLUMN reporting.theme_evidence.label IS 'theme label; NULL when the whole theme is suppressed';
COMMENT ON COLUMN reporting.theme_evidence.session_model IS 'the model the interviewed person had used';
COMMENT ON COLUMN reporting.theme_evidence.quote_rank IS
    '1..3 for the theme''s most representative answers (nearest its centroid), else NULL';
COMMENT ON COLUMN reporting.theme_evidence.interview_id IS 'the interview (a sha256 id)';
COMMENT ON COLUMN reporting.theme_evidence.unit_id IS 'the answer unit: interview_id:answer index';
COMMENT ON COLUMN reporting.theme_evidence.question IS 'the interviewer''s question, scrubbed';
COMMENT ON COLUMN reporting.theme_evidence.answer IS
    'the answer, scrubbed: e-mails, phone numbers, keys, token URLs... replaced by [placeholders]';
COMMENT ON COLUMN reporting.theme_evidence.suppressed IS
    'true: the row stands for a theme × model cell under K interviews, whose answers are withheld';
COMMENT ON COLUMN reporting.theme_evidence.job_id IS 'the published job';

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.theme_model_sentences AS
SELECT l.study, s.theme_id, CASE WHEN NOT c.theme_suppressed THEN t.label END AS label,
       s.session_model,
       CASE WHEN NOT c.suppressed THEN s.sentence END AS sentence,
       CASE WHEN NOT c.suppressed THEN s.unit_ids END AS unit_ids,
       s.labeller, c.suppressed, l.job_id
FROM latest_jobs l
JOIN theme_sentences s USING (job_id)
JOIN themes t USING (job_id, theme_id)
JOIN reporting_cells c USING (job_id, theme_id, session_model);
COMMENT ON VIEW reporting.theme_model_sentences IS
    'Per theme × session model, the LLM''s sentence on how the theme shows up for that model (LLM labeller only).';
COMMENT ON COLUMN reporting.theme_model_sentences.study IS 'study name';
COMMENT ON COLUMN reporting.theme_model_sentences.theme_id IS 'theme id';
COMMENT ON COLUMN reporting.theme_model_sentences.label IS 'theme label; NULL when the whole theme is suppressed';
COMMENT ON COLUMN reporting.theme_model_sentences.session_model IS 'the model the interviewed people had used';
COMMENT ON COLUMN reporting.theme_model_sentences.sentence IS 'the sentence; NULL when the cell is suppressed';
COMMENT ON COLUMN reporting.theme_model_sentences.unit_ids IS
    'answers the sentence cites (join theme_evidence.unit_id); NULL when suppressed';
COMMENT ON COLUMN reporting.theme_model_sentences.labeller IS 'the LLM that wrote it';
COMMENT ON COLUMN reporting.theme_model_sentences.suppressed IS 'true when the cell has fewer than K interviews';
COMMENT ON COLUMN reporting.theme_model_sentences.job_id IS 'the published job';

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.theme_sentiment AS
SELECT l.study, s.theme_id, CASE WHEN NOT c.theme_suppressed THEN t.label END AS label, s.session_model,
       CASE WHEN NOT c.suppressed THEN s.answers END        AS answers,
       CASE WHEN NOT c.suppressed THEN s.positive_share END AS positive_share,
       CASE WHEN NOT c.suppressed THEN s.negative_share END AS negative_share,
       CASE WHEN NOT c.suppressed THEN s.mean_sentiment END AS mean_sentiment,
       CASE WHEN NOT c.suppressed THEN s.bipolar END        AS bipolar,
       c.suppressed, l.job_id
FROM latest_jobs l
JOIN sentiment_stats s USING (job_id)
JOIN themes t USING (job_id, theme_id)
JOIN reporting_cells c USING (job_id, theme_id, session_model);
COMMENT ON VIEW reporting.theme_sentiment IS
    'Per theme × session model: how positive or negative the answers are; bipolar marks a split opinion.';
COMMENT ON COLUMN reporting.theme_sentiment.study IS 'study name';
COMMENT ON COLUMN reporting.theme_sentiment.theme_id IS 'theme id';
COMMENT ON COLUMN reporting.theme_sentiment.label IS 'theme label; NULL when the whole theme is suppressed';
COMMENT ON COLUMN reporting.theme_sentiment.session_model IS 'the model the interviewed people had used';
COMMENT ON COLUMN reporting.theme_sentiment.answers IS 'answers counted (low-quality interviews left out)';
COMMENT ON COLUMN reporting.theme_sentiment.positive_share IS 'share of answers with sentiment >= 4 (1-5 scale)';
COMMENT ON COLUMN reporting.theme_sentiment.negative_share IS 'share of answers with sentiment <= 2';
COMMENT ON COLUMN reporting.theme_sentiment.mean_sentiment IS 'mean sentiment, 1-5 (3 = neutral)';
COMMENT ON COLUMN reporting.theme_sentiment.bipolar IS 'both shares sizeable: opinion is split';
COMMENT ON COLUMN reporting.theme_sentiment.suppressed IS 'true when the cell has fewer than K interviews';
COMMENT ON COLUMN reporting.theme_sentiment.job_id IS 'the published job';

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.model_ratings AS
SELECT l.study, r.session_model, r.dimension,
       CASE WHEN NOT sup.s THEN r.mean END    AS mean,
       CASE WHEN NOT sup.s THEN r.ci_low END  AS ci_low,
       CASE WHEN NOT sup.s THEN r.ci_high END AS ci_high,
       CASE WHEN NOT sup.s THEN r.n END       AS n,
       CASE WHEN NOT sup.s THEN r.n_explicit END AS n_explicit,
       ir.rating_estimator, sup.s AS suppressed, l.job_id
FROM latest_jobs l
JOIN rating_stats r USING (job_id)
JOIN insight_runs ir USING (job_id)
CROSS JOIN LATERAL (SELECT r.n BETWEEN 1 AND min_interviews_per_cell - 1 AS s FROM reporting_settings) sup;
COMMENT ON VIEW reporting.model_ratings IS
    'Per session model and dimension: the mean 1-5 rating with its 95% bootstrap interval and n.';
COMMENT ON COLUMN reporting.model_ratings.study IS 'study name';
COMMENT ON COLUMN reporting.model_ratings.session_model IS 'the model the interviewed people had used';
COMMENT ON COLUMN reporting.model_ratings.dimension IS
    'understanding, needs, credibility, satisfaction or overall (the question''s dimension)';
COMMENT ON COLUMN reporting.model_ratings.mean IS 'mean rating, 1-5';
COMMENT ON COLUMN reporting.model_ratings.ci_low IS 'lower bound of the mean''s 95% percentile-bootstrap interval';
COMMENT ON COLUMN reporting.model_ratings.ci_high IS 'upper bound of that interval';
COMMENT ON COLUMN reporting.model_ratings.n IS 'interviews rated (low-quality ones left out)';
COMMENT ON COLUMN reporting.model_ratings.n_explicit IS 'of which gave a number themselves (the rest are estimated)';
COMMENT ON COLUMN reporting.model_ratings.rating_estimator IS 'how missing ratings were estimated';
COMMENT ON COLUMN reporting.model_ratings.suppressed IS 'true when 1..K-1 interviews are rated: numbers are NULL';
COMMENT ON COLUMN reporting.model_ratings.job_id IS 'the published job';

-- ---------------------------------------------------------------------------------------------
-- Both orders of each pair, as in public.dimension_correlations, so a matrix is one pivot away.
CREATE VIEW reporting.dimension_correlations AS
SELECT d.study, d.dimension_a, d.dimension_b,
       CASE WHEN NOT sup.s THEN d.spearman END AS spearman,
       CASE WHEN NOT sup.s THEN d.p_value END  AS p_value,
       CASE WHEN NOT sup.s THEN d.n END        AS n,
       sup.s AS suppressed, d.job_id
FROM (SELECT l.study, c.dimension_a, c.dimension_b, c.spearman, c.p_value, c.n, l.job_id
      FROM latest_jobs l JOIN correlation_stats c USING (job_id)
      UNION ALL
      SELECT l.study, c.dimension_b, c.dimension_a, c.spearman, c.p_value, c.n, l.job_id
      FROM latest_jobs l JOIN correlation_stats c USING (job_id)) d
CROSS JOIN LATERAL (SELECT d.n BETWEEN 1 AND min_interviews_per_cell - 1 AS s FROM reporting_settings) sup;
COMMENT ON VIEW reporting.dimension_correlations IS
    'Spearman correlation between two dimensions'' ratings over interviews that have both; both orders listed.';
COMMENT ON COLUMN reporting.dimension_correlations.study IS 'study name';
COMMENT ON COLUMN reporting.dimension_correlations.dimension_a IS 'first dimension';
COMMENT ON COLUMN reporting.dimension_correlations.dimension_b IS 'second dimension';
COMMENT ON COLUMN reporting.dimension_correlations.spearman IS 'rank correlation, -1..1 (NULL: too few pairs or no variation)';
COMMENT ON COLUMN reporting.dimension_correlations.p_value IS 'p-value of the correlation';
COMMENT ON COLUMN reporting.dimension_correlations.n IS 'interviews with ratings on both dimensions';
COMMENT ON COLUMN reporting.dimension_correlations.suppressed IS 'true when 1..K-1 interviews are behind it';
COMMENT ON COLUMN reporting.dimension_correlations.job_id IS 'the published job';

-- ---------------------------------------------------------------------------------------------
-- Counts only (no text, no interview ids): a count of excluded interviews singles out no answer.
CREATE VIEW reporting.quality_exclusions AS
SELECT l.study, q.session_model, reason, count(*)::integer AS interviews,
       count(*)::double precision / max(m.interviews) AS share,
       NOT bool_or(ir.low_quality_included) AS excluded_from_statistics,
       l.job_id
FROM latest_jobs l
JOIN insight_runs ir USING (job_id)
JOIN quality_verdicts q USING (job_id)
JOIN (SELECT job_id, session_model, count(*) AS interviews FROM quality_verdicts
      GROUP BY job_id, session_model) m USING (job_id, session_model)
CROSS JOIN LATERAL unnest(q.reasons || CASE WHEN q.low_quality THEN ARRAY['any'] ELSE ARRAY[]::text[] END) AS reason
GROUP BY l.study, q.session_model, reason, l.job_id;
COMMENT ON VIEW reporting.quality_exclusions IS
    'Per session model and reason: how many interviews the quality filter flagged. An interview with '
    'two reasons counts under both; reason ''any'' counts each flagged interview once.';
COMMENT ON COLUMN reporting.quality_exclusions.study IS 'study name';
COMMENT ON COLUMN reporting.quality_exclusions.session_model IS 'the model the interviewed people had used';
COMMENT ON COLUMN reporting.quality_exclusions.reason IS
    'short_chat, empty_answers, copy_pasted, unrelated_answers, llm_judge, or any';
COMMENT ON COLUMN reporting.quality_exclusions.interviews IS 'interviews flagged for that reason';
COMMENT ON COLUMN reporting.quality_exclusions.share IS 'of all the model''s interviews in the job';
COMMENT ON COLUMN reporting.quality_exclusions.excluded_from_statistics IS
    'true when flagged interviews were left out of ratings and prevalence';
COMMENT ON COLUMN reporting.quality_exclusions.job_id IS 'the published job';

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.job_history AS
SELECT study, job_id, kind, status, stage, progress, created_at, started_at, finished_at,
       extract(epoch FROM finished_at - started_at)::double precision AS seconds,
       (counts->>'interviews')::integer AS interviews,
       (counts->>'units')::integer      AS units,
       (counts->>'themes')::integer     AS themes,
       (counts->>'outliers')::integer   AS outliers,
       previous_job_id, counts, error
FROM jobs;
COMMENT ON VIEW reporting.job_history IS 'Every job of every study (analysis and nightly runs): status, timings, counts.';
COMMENT ON COLUMN reporting.job_history.study IS 'study name';
COMMENT ON COLUMN reporting.job_history.job_id IS 'job id';
COMMENT ON COLUMN reporting.job_history.kind IS 'analyze (on request) or nightly (scheduled run)';
COMMENT ON COLUMN reporting.job_history.status IS 'queued, running, succeeded, failed or cancelled';
COMMENT ON COLUMN reporting.job_history.stage IS 'last step reached';
COMMENT ON COLUMN reporting.job_history.progress IS '0..1';
COMMENT ON COLUMN reporting.job_history.created_at IS 'when the job was queued';
COMMENT ON COLUMN reporting.job_history.started_at IS 'when a worker started it';
COMMENT ON COLUMN reporting.job_history.finished_at IS 'when it ended';
COMMENT ON COLUMN reporting.job_history.seconds IS 'finished_at - started_at, in seconds';
COMMENT ON COLUMN reporting.job_history.interviews IS 'interviews analysed';
COMMENT ON COLUMN reporting.job_history.units IS 'answer units analysed';
COMMENT ON COLUMN reporting.job_history.themes IS 'themes found';
COMMENT ON COLUMN reporting.job_history.outliers IS 'answers that fit no theme';
COMMENT ON COLUMN reporting.job_history.previous_job_id IS 'the published job this run built on (theme ids carry over)';
COMMENT ON COLUMN reporting.job_history.counts IS 'every counter the job recorded (JSON)';
COMMENT ON COLUMN reporting.job_history.error IS 'why it failed, when it did';

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.theme_history AS
SELECT j.study, j.job_id, j.kind, j.finished_at, c.theme_id,
       CASE WHEN NOT c.theme_suppressed THEN t.label END AS label, c.session_model,
       CASE WHEN NOT c.suppressed THEN c.answers END    AS answers,
       CASE WHEN NOT c.suppressed THEN c.interviews END AS interviews,
       CASE WHEN NOT c.suppressed THEN c.share END      AS share,
       c.suppressed
FROM jobs j
JOIN reporting_cells c USING (job_id)
JOIN themes t USING (job_id, theme_id)
WHERE j.status = 'succeeded';
COMMENT ON VIEW reporting.theme_history IS
    'Per succeeded run (analysis or nightly), each theme × model''s answers and share, to follow themes over time.';
COMMENT ON COLUMN reporting.theme_history.study IS 'study name';
COMMENT ON COLUMN reporting.theme_history.job_id IS 'the run';
COMMENT ON COLUMN reporting.theme_history.kind IS 'analyze or nightly';
COMMENT ON COLUMN reporting.theme_history.finished_at IS 'when the run finished';
COMMENT ON COLUMN reporting.theme_history.theme_id IS 'theme id, stable over runs';
COMMENT ON COLUMN reporting.theme_history.label IS 'the theme''s label in that run; NULL when suppressed';
COMMENT ON COLUMN reporting.theme_history.session_model IS 'the model the interviewed people had used';
COMMENT ON COLUMN reporting.theme_history.answers IS 'this model''s answers in the theme in that run';
COMMENT ON COLUMN reporting.theme_history.interviews IS 'distinct interviews behind them';
COMMENT ON COLUMN reporting.theme_history.share IS 'answers / all of the model''s answers in that run';
COMMENT ON COLUMN reporting.theme_history.suppressed IS 'true when 1..K-1 interviews back the cell: numbers are NULL';

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.theme_lineage AS
SELECT e.study, e.theme_id, e.job_id, j.kind, j.finished_at, e.event, e.related
FROM theme_events e
JOIN jobs j USING (job_id)
WHERE j.status = 'succeeded';
COMMENT ON VIEW reporting.theme_lineage IS
    'What happened to each theme id in each succeeded run: born, kept, merged, split or retired.';
COMMENT ON COLUMN reporting.theme_lineage.study IS 'study name';
COMMENT ON COLUMN reporting.theme_lineage.theme_id IS 'theme id';
COMMENT ON COLUMN reporting.theme_lineage.job_id IS 'the run';
COMMENT ON COLUMN reporting.theme_lineage.kind IS 'analyze or nightly';
COMMENT ON COLUMN reporting.theme_lineage.finished_at IS 'when the run finished';
COMMENT ON COLUMN reporting.theme_lineage.event IS 'born, kept, merged, split or retired';
COMMENT ON COLUMN reporting.theme_lineage.related IS
    'merged: the theme ids it absorbed; split: the theme id it came from; else empty';

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.llm_cost AS
SELECT job_id, study, purpose, model, calls, requests, cache_hits, prompt_tokens, completion_tokens,
       billed_tokens, cached_tokens, ok, invalid, failed, skipped, latency_ms
FROM llm_cost;
COMMENT ON VIEW reporting.llm_cost IS 'The LLM ledger per job, purpose and model; cache hits are not billed.';
COMMENT ON COLUMN reporting.llm_cost.job_id IS 'job id (NULL: calls made outside a job)';
COMMENT ON COLUMN reporting.llm_cost.study IS 'study name';
COMMENT ON COLUMN reporting.llm_cost.purpose IS 'what the calls were for: label, distinct, model_sentences, rate...';
COMMENT ON COLUMN reporting.llm_cost.model IS 'LLM model called';
COMMENT ON COLUMN reporting.llm_cost.calls IS 'requests the LLM layer answered or declined';
COMMENT ON COLUMN reporting.llm_cost.requests IS 'HTTP requests made, retries included';
COMMENT ON COLUMN reporting.llm_cost.cache_hits IS 'calls answered from the response cache';
COMMENT ON COLUMN reporting.llm_cost.prompt_tokens IS 'billed prompt tokens (cache hits excluded)';
COMMENT ON COLUMN reporting.llm_cost.completion_tokens IS 'billed completion tokens (cache hits excluded)';
COMMENT ON COLUMN reporting.llm_cost.billed_tokens IS 'prompt + completion tokens billed';
COMMENT ON COLUMN reporting.llm_cost.cached_tokens IS 'tokens served from the cache, not billed';
COMMENT ON COLUMN reporting.llm_cost.ok IS 'calls with a valid reply';
COMMENT ON COLUMN reporting.llm_cost.invalid IS 'calls whose reply failed validation';
COMMENT ON COLUMN reporting.llm_cost.failed IS 'calls that failed after their retries';
COMMENT ON COLUMN reporting.llm_cost.skipped IS 'calls not made: budget spent or endpoint unavailable';
COMMENT ON COLUMN reporting.llm_cost.latency_ms IS 'wall time of the calls, retries and backoff included';
