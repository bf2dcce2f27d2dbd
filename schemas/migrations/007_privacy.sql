-- Privacy, part two (issue 11.5/11.6, 13.3):
--
-- * K is an operator's act. `miner db set-threshold K` is the only writer of
--   reporting_settings after the database is created (who and when are kept), and every job
--   records the K in force when it was published (jobs.min_interviews_per_cell, set by trigger).
-- * "Published" is defined once: published_jobs ranks each study's succeeded jobs; latest_jobs is
--   its first row, and Python asks the same view (repository_runs.published_job).
-- * One name, one meaning: a view name in both `public` and `reporting` is the reporting view in
--   both (public.X = SELECT * FROM reporting.X), so owner and reader see the same rows.
-- * No count below K by subtraction: a theme's totals count its published cells only; one-vs-rest
--   and across-model statistics that include a suppressed cell are withheld; a model's row of
--   cells (whose total `share` reveals) never holds exactly one suppressed cell: its smallest
--   published cell is suppressed with it (complementary suppression).

-- ---------------------------------------------------------------------------------------------
ALTER TABLE reporting_settings ADD COLUMN updated_by text NOT NULL DEFAULT current_user;
COMMENT ON TABLE reporting_settings IS
    'The privacy threshold K: written when the database is created and by `miner db set-threshold` only';

ALTER TABLE jobs ADD COLUMN min_interviews_per_cell integer;  -- K in force when the job was published

CREATE FUNCTION record_publication_threshold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.min_interviews_per_cell := (SELECT min_interviews_per_cell FROM reporting_settings);
    RETURN NEW;
END $$;
CREATE TRIGGER jobs_record_threshold BEFORE UPDATE OF status ON jobs FOR EACH ROW
    WHEN (NEW.status = 'succeeded' AND OLD.status IS DISTINCT FROM 'succeeded')
    EXECUTE FUNCTION record_publication_threshold();

-- ---------------------------------------------------------------------------------------------
-- The one definition of "published": a study's succeeded jobs (analysis or nightly), newest first;
-- recency 1 is the published job every reporting view reads.
CREATE VIEW published_jobs AS
SELECT study, job_id, finished_at,
       row_number() OVER (PARTITION BY study ORDER BY finished_at DESC, job_id) AS recency
FROM jobs
WHERE status = 'succeeded';

CREATE OR REPLACE VIEW latest_jobs AS
SELECT study, job_id, finished_at FROM published_jobs WHERE recency = 1;

-- ---------------------------------------------------------------------------------------------
-- The suppression rule, still written down once. Columns kept from 006, new ones appended:
--   primary_suppressed  1..K-1 interviews back the cell (or its prevalence count)
--   complementary       suppressed only so that its model's row does not single out one cell
--   theme_has_suppressed  some cell of the theme is suppressed (across-model statistics withheld)
CREATE OR REPLACE VIEW reporting_cells AS
WITH k AS (SELECT min_interviews_per_cell AS k FROM reporting_settings),
base AS (
    SELECT s.job_id, s.theme_id, s.session_model, s.answers, s.interviews, s.share,
           (s.interviews BETWEEN 1 AND k.k - 1
            OR coalesce(p.interviews_with BETWEEN 1 AND k.k - 1, false)) AS primary_suppressed,
           t.interviews < k.k AS theme_suppressed
    FROM theme_model_stats s
    CROSS JOIN k
    JOIN themes t USING (job_id, theme_id)
    LEFT JOIN prevalence_stats p USING (job_id, theme_id, session_model)
),
lonely AS (  -- a model's row of cells with exactly one suppressed cell
    SELECT job_id, session_model FROM base GROUP BY job_id, session_model
    HAVING count(*) FILTER (WHERE primary_suppressed) = 1
),
complement AS (  -- its smallest published, non-empty cell is suppressed with it
    SELECT DISTINCT ON (b.job_id, b.session_model) b.job_id, b.theme_id, b.session_model
    FROM base b JOIN lonely USING (job_id, session_model)
    WHERE NOT b.primary_suppressed AND b.answers > 0
    ORDER BY b.job_id, b.session_model, b.answers, b.interviews, b.theme_id
)
SELECT b.job_id, b.theme_id, b.session_model, b.answers, b.interviews, b.share,
       b.primary_suppressed OR c.theme_id IS NOT NULL AS suppressed,
       b.theme_suppressed,
       b.primary_suppressed,
       c.theme_id IS NOT NULL AS complementary,
       bool_or(b.primary_suppressed OR c.theme_id IS NOT NULL)
           OVER (PARTITION BY b.job_id, b.theme_id) AS theme_has_suppressed
FROM base b
LEFT JOIN complement c USING (job_id, theme_id, session_model);

-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW reporting.privacy AS
SELECT s.min_interviews_per_cell, s.updated_at, s.updated_by,
       (SELECT count(*) FROM latest_jobs l JOIN jobs j USING (job_id)
        WHERE j.min_interviews_per_cell IS DISTINCT FROM s.min_interviews_per_cell)::integer
           AS studies_published_under_other_k
FROM reporting_settings s;
COMMENT ON VIEW reporting.privacy IS
    'The privacy threshold K every other view applies; only `miner db set-threshold K` changes it.';
COMMENT ON COLUMN reporting.privacy.updated_at IS 'when K was last set';
COMMENT ON COLUMN reporting.privacy.updated_by IS 'the database role that set it';
COMMENT ON COLUMN reporting.privacy.studies_published_under_other_k IS
    'studies whose published job was published under another K (see studies.min_interviews_per_cell); '
    'the views apply the K above to them too';

CREATE OR REPLACE VIEW reporting.studies AS
SELECT l.study, l.job_id, j.kind, l.finished_at,
       (j.counts->>'interviews')::integer AS interviews,
       (j.counts->>'units')::integer      AS units,
       (SELECT count(*) FROM themes t WHERE t.job_id = l.job_id)::integer AS themes,
       (SELECT array_agg(DISTINCT s.session_model ORDER BY s.session_model)
          FROM theme_model_stats s WHERE s.job_id = l.job_id) AS session_models,
       j.min_interviews_per_cell
FROM latest_jobs l
JOIN jobs j USING (job_id);
COMMENT ON COLUMN reporting.studies.min_interviews_per_cell IS
    'K in force when the job was published (NULL: published before K was recorded)';

-- ---------------------------------------------------------------------------------------------
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
       l.job_id
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
COMMENT ON COLUMN reporting.themes.answers IS
    'answers in the theme''s published cells (all models; suppressed cells not counted, so no '
    'subtraction reveals them)';
COMMENT ON COLUMN reporting.themes.interviews IS
    'distinct interviews behind those answers (published cells only)';
COMMENT ON COLUMN reporting.themes.chi_square IS
    'chi-square statistic of the theme''s prevalence across all models (NULL until statistics ran, '
    'or when a cell of the theme is suppressed)';
COMMENT ON COLUMN reporting.themes.p_adjusted IS
    'its p-value, adjusted over all themes of the job (NULL when a cell is suppressed)';
COMMENT ON COLUMN reporting.themes.cramers_v IS
    'effect size of the difference between models (0..1; NULL when a cell is suppressed)';
COMMENT ON COLUMN reporting.themes.models_differ IS
    'p_adjusted below the job''s alpha: models differ on this theme (NULL when a cell is suppressed)';
COMMENT ON COLUMN reporting.themes.suppressed_cells IS
    'how many of its theme × model cells are suppressed (complementary ones included)';

-- ---------------------------------------------------------------------------------------------
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
       -- The rest includes every other cell of the theme: withheld when one of them is suppressed.
       CASE WHEN NOT c.theme_has_suppressed THEN p.rest_prevalence END AS rest_prevalence,
       CASE WHEN NOT c.theme_has_suppressed THEN p.difference END      AS difference,
       CASE WHEN NOT c.theme_has_suppressed THEN p.cohens_h END        AS cohens_h,
       CASE WHEN NOT c.theme_has_suppressed THEN p.p_value END         AS p_value,
       CASE WHEN NOT c.theme_has_suppressed THEN p.p_adjusted END      AS p_adjusted,
       CASE WHEN NOT c.theme_has_suppressed THEN p.significant END     AS significant,
       CASE WHEN NOT c.theme_has_suppressed THEN p.significant AND p.difference > 0 END AS more_common,
       CASE WHEN NOT c.theme_has_suppressed THEN p.significant AND p.difference < 0 END AS less_common
FROM latest_jobs l
JOIN reporting_cells c USING (job_id)
JOIN themes t USING (job_id, theme_id)
LEFT JOIN prevalence_stats p USING (job_id, theme_id, session_model);
COMMENT ON COLUMN reporting.theme_by_model.suppressed IS
    'true when 1..K-1 distinct interviews back the cell, or it is suppressed with the one such cell of '
    'its model (complementary): every number of the row is NULL';
COMMENT ON COLUMN reporting.theme_by_model.rest_prevalence IS
    'the same share over all other models (NULL when a cell of the theme is suppressed)';
COMMENT ON COLUMN reporting.theme_by_model.difference IS 'prevalence - rest_prevalence';
COMMENT ON COLUMN reporting.theme_by_model.p_value IS
    'Fisher exact test, this model against the rest (NULL when a cell of the theme is suppressed)';

-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW reporting.theme_model_sentences AS
SELECT l.study, s.theme_id, CASE WHEN NOT c.theme_suppressed THEN t.label END AS label,
       s.session_model,
       CASE WHEN NOT c.suppressed THEN s.sentence END AS sentence,
       CASE WHEN NOT c.suppressed THEN s.unit_ids END AS unit_ids,
       s.labeller, c.suppressed, l.job_id,
       CASE WHEN NOT c.theme_suppressed THEN o.polarity END AS polarity,
       CASE WHEN NOT c.suppressed THEN c.answers END AS answers,
       CASE WHEN NOT c.suppressed THEN c.share END AS share
FROM latest_jobs l
JOIN theme_sentences s USING (job_id)
JOIN themes t USING (job_id, theme_id)
JOIN reporting_cells c USING (job_id, theme_id, session_model)
LEFT JOIN theme_opinions o USING (job_id, theme_id);
COMMENT ON COLUMN reporting.theme_model_sentences.polarity IS 'the theme''s polarity (NULL when the theme is suppressed)';
COMMENT ON COLUMN reporting.theme_model_sentences.answers IS 'this model''s answers in the theme; NULL when suppressed';
COMMENT ON COLUMN reporting.theme_model_sentences.share IS 'answers / all of this model''s answers; NULL when suppressed';

-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW reporting.job_history AS
SELECT study, job_id, kind, status, stage, progress, created_at, started_at, finished_at,
       extract(epoch FROM finished_at - started_at)::double precision AS seconds,
       (counts->>'interviews')::integer AS interviews,
       (counts->>'units')::integer      AS units,
       (counts->>'themes')::integer     AS themes,
       (counts->>'outliers')::integer   AS outliers,
       previous_job_id, counts, error,
       finished_at - started_at AS duration,
       min_interviews_per_cell
FROM jobs;
COMMENT ON COLUMN reporting.job_history.duration IS 'finished_at - started_at, as an interval';
COMMENT ON COLUMN reporting.job_history.min_interviews_per_cell IS
    'K in force when the job was published (NULL: not published, or before K was recorded)';

-- ---------------------------------------------------------------------------------------------
-- One name, one meaning: the owner's unqualified name shows the reader's rows. The owner's
-- unrestricted reads keep their own names (theme_summary, theme_answers, theme_prevalence,
-- interview_ratings...) or the tables.
DROP VIEW public.theme_by_model;
CREATE VIEW public.theme_by_model AS SELECT * FROM reporting.theme_by_model;
DROP VIEW public.theme_model_sentences;
CREATE VIEW public.theme_model_sentences AS SELECT * FROM reporting.theme_model_sentences;
DROP VIEW public.model_ratings;
CREATE VIEW public.model_ratings AS SELECT * FROM reporting.model_ratings;
DROP VIEW public.quality_exclusions;
CREATE VIEW public.quality_exclusions AS SELECT * FROM reporting.quality_exclusions;
DROP VIEW public.dimension_correlations;
CREATE VIEW public.dimension_correlations AS SELECT * FROM reporting.dimension_correlations;
DROP VIEW public.theme_sentiment;
CREATE VIEW public.theme_sentiment AS SELECT * FROM reporting.theme_sentiment;
DROP VIEW public.job_history;
CREATE VIEW public.job_history AS SELECT * FROM reporting.job_history;
DROP VIEW public.theme_history;
CREATE VIEW public.theme_history AS SELECT * FROM reporting.theme_history;
DROP VIEW public.theme_lineage;
CREATE VIEW public.theme_lineage AS SELECT * FROM reporting.theme_lineage;
-- reporting.llm_cost is public.llm_cost's rows, column for column (it reads that view).
