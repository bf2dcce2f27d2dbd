-- The opinion layer (issue 12): the job clusters opinion units, not whole answers.
--
-- * An opinion unit is a span of one answer (miner/opinion_units.py): its own row in `units`
--   (unit_id "<interview>:<answer index>:<k>", `answer` = the span's text, `answer_hash` its
--   embedding key) with the answer it comes from, the span's offsets, the whole answer and its
--   stance (positive / negative / neutral, miner/stance.py). Answer units keep their rows (these
--   columns NULL) and feed ratings, quality and statistics.
-- * job_units holds the job's opinion units (what is embedded, clustered and themed);
--   job_answers the job's answer units, each flagged when it carries no opinion (a bare rating,
--   yes/no, "idk", "?"): those are counted (reporting.no_opinion), never themed.
-- * themes.stance: positive / negative / neutral when most of the theme's units say so, else mixed.

ALTER TABLE units
    ADD COLUMN answer_unit_id text,    -- opinion units: the answer unit they are a span of
    ADD COLUMN span_start     integer, -- char offsets of the span in the whole answer
    ADD COLUMN span_end       integer,
    ADD COLUMN full_answer    text,    -- the whole answer the span was cut from
    ADD COLUMN stance         text CHECK (stance IN ('positive', 'negative', 'neutral'));

CREATE TABLE job_answers (
    job_id     uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    position   integer NOT NULL,
    unit_id    text NOT NULL REFERENCES units ON DELETE CASCADE,
    no_opinion boolean NOT NULL,
    PRIMARY KEY (job_id, position),
    UNIQUE (job_id, unit_id)
);

ALTER TABLE themes ADD COLUMN stance text CHECK (stance IN ('positive', 'negative', 'mixed', 'neutral'));

-- ---------------------------------------------------------------------------------------------
-- reporting.themes and reporting.theme_by_model gain `stance` (appended; the rest as in 007).
CREATE OR REPLACE VIEW reporting.themes AS
SELECT l.study, t.theme_id,
       CASE WHEN NOT c.theme_suppressed THEN t.label END    AS label,
       CASE WHEN NOT c.theme_suppressed THEN t.summary END  AS summary,
       CASE WHEN NOT c.theme_suppressed THEN o.polarity END AS polarity,
       CASE WHEN NOT c.theme_suppressed THEN t.keywords END AS keywords,
       t.labeller,
       CASE WHEN NOT c.theme_suppressed THEN c.answers END    AS answers,
       CASE WHEN NOT c.theme_suppressed THEN c.interviews END AS interviews,
       CASE WHEN NOT c.any_suppressed THEN x.statistic END  AS chi_square,
       CASE WHEN NOT c.any_suppressed THEN x.p_adjusted END AS p_adjusted,
       CASE WHEN NOT c.any_suppressed THEN x.cramers_v END  AS cramers_v,
       CASE WHEN NOT c.any_suppressed THEN x.significant END AS models_differ,
       c.theme_suppressed AS suppressed,
       c.suppressed_cells,
       l.job_id,
       CASE WHEN NOT c.theme_suppressed THEN t.stance END AS stance
FROM latest_jobs l
JOIN themes t USING (job_id)
JOIN (SELECT job_id, theme_id, bool_or(theme_suppressed) AS theme_suppressed,
             bool_or(suppressed) AS any_suppressed,
             count(*) FILTER (WHERE suppressed)::integer AS suppressed_cells,
             coalesce(sum(answers) FILTER (WHERE NOT suppressed), 0)::integer AS answers,
             coalesce(sum(interviews) FILTER (WHERE NOT suppressed), 0)::integer AS interviews
      FROM reporting_cells GROUP BY job_id, theme_id) c USING (job_id, theme_id)
LEFT JOIN theme_opinions o USING (job_id, theme_id)
LEFT JOIN prevalence_tests x USING (job_id, theme_id);
COMMENT ON COLUMN reporting.themes.stance IS
    'positive, negative or neutral when at least 60% of the theme''s opinion units say so, else mixed '
    '(NULL when the theme is suppressed)';

CREATE OR REPLACE VIEW reporting.theme_by_model AS
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
       CASE WHEN NOT c.theme_has_suppressed THEN p.rest_prevalence END AS rest_prevalence,
       CASE WHEN NOT c.theme_has_suppressed THEN p.difference END      AS difference,
       CASE WHEN NOT c.theme_has_suppressed THEN p.cohens_h END        AS cohens_h,
       CASE WHEN NOT c.theme_has_suppressed THEN p.p_value END         AS p_value,
       CASE WHEN NOT c.theme_has_suppressed THEN p.p_adjusted END      AS p_adjusted,
       CASE WHEN NOT c.theme_has_suppressed THEN p.significant END     AS significant,
       CASE WHEN NOT c.theme_has_suppressed THEN p.significant AND p.difference > 0 END AS more_common,
       CASE WHEN NOT c.theme_has_suppressed THEN p.significant AND p.difference < 0 END AS less_common,
       CASE WHEN NOT c.theme_suppressed THEN t.stance END AS stance
FROM latest_jobs l
JOIN reporting_cells c USING (job_id)
JOIN themes t USING (job_id, theme_id)
LEFT JOIN prevalence_stats p USING (job_id, theme_id, session_model);
COMMENT ON COLUMN reporting.theme_by_model.stance IS
    'the theme''s stance: positive, negative, mixed or neutral (NULL when the theme is suppressed)';

-- public.theme_by_model is reporting's rows, column for column (007): re-read with the new column.
DROP VIEW public.theme_by_model;
CREATE VIEW public.theme_by_model AS SELECT * FROM reporting.theme_by_model;

-- ---------------------------------------------------------------------------------------------
-- Answers that carry no opinion, per published study, model and question. A row backed by 1..K-1
-- distinct interviews keeps its place, flagged suppressed, with NULL counts and no examples.
CREATE VIEW reporting.no_opinion AS
WITH k AS (SELECT min_interviews_per_cell AS k FROM reporting_settings),
counted AS (
    SELECT l.study, l.job_id, u.session_model, su.question,
           count(*)::integer                      AS answers,
           count(DISTINCT u.interview_id)::integer AS interviews,
           (array_agg(DISTINCT su.answer))[1:3]   AS examples
    FROM latest_jobs l
    JOIN job_answers a ON a.job_id = l.job_id AND a.no_opinion
    JOIN units u ON u.unit_id = a.unit_id
    JOIN scrubbed_units su ON su.unit_id = a.unit_id
    GROUP BY l.study, l.job_id, u.session_model, su.question
)
SELECT c.study, c.session_model, c.question,
       CASE WHEN NOT s.suppressed THEN c.answers END    AS answers,
       CASE WHEN NOT s.suppressed THEN c.interviews END AS interviews,
       CASE WHEN NOT s.suppressed THEN c.examples END   AS examples,
       s.suppressed, c.job_id
FROM counted c
CROSS JOIN k
CROSS JOIN LATERAL (SELECT c.interviews BETWEEN 1 AND k.k - 1 AS suppressed) s;
COMMENT ON VIEW reporting.no_opinion IS
    'Answers that carry no opinion (a bare rating, yes/no, "idk", "?", "fine"), counted per study, model '
    'and question: they feed ratings but are never theme members.';
COMMENT ON COLUMN reporting.no_opinion.study IS 'study name';
COMMENT ON COLUMN reporting.no_opinion.session_model IS 'the model the people used';
COMMENT ON COLUMN reporting.no_opinion.question IS 'the interviewer''s question (scrubbed)';
COMMENT ON COLUMN reporting.no_opinion.answers IS 'no-opinion answers to it (NULL when suppressed)';
COMMENT ON COLUMN reporting.no_opinion.interviews IS 'distinct interviews behind them (NULL when suppressed)';
COMMENT ON COLUMN reporting.no_opinion.examples IS 'up to three of those answers, scrubbed (NULL when suppressed)';
COMMENT ON COLUMN reporting.no_opinion.suppressed IS 'true when 1..K-1 distinct interviews are behind the row';
COMMENT ON COLUMN reporting.no_opinion.job_id IS 'the published job';

CREATE VIEW public.no_opinion AS SELECT * FROM reporting.no_opinion;
