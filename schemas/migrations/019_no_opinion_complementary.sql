-- reporting.no_opinion gave a suppressed row back by subtraction: job_history.counts->'no_opinion' is
-- the job's total of no-opinion answers, so with exactly one row under K that total minus the published
-- rows was its count (HALIE at K = 6: 41 − 36 = Davinci's 5). As reporting_cells does for a model's row
-- of theme cells (007), a job with exactly one suppressed row has its smallest published row suppressed
-- too (complementary); the gap is then the sum of two or more rows. Columns unchanged.
CREATE OR REPLACE VIEW reporting.no_opinion AS
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
),
flagged AS (
    SELECT c.*, c.interviews BETWEEN 1 AND k.k - 1 AS primary_suppressed,
           count(*) FILTER (WHERE c.interviews BETWEEN 1 AND k.k - 1) OVER (PARTITION BY c.job_id) AS small_rows
    FROM counted c CROSS JOIN k
),
complement AS (  -- in a job with exactly one row under K, its smallest published row
    SELECT DISTINCT ON (f.job_id) f.job_id, f.session_model, f.question
    FROM flagged f
    WHERE NOT f.primary_suppressed AND f.small_rows = 1
    ORDER BY f.job_id, f.answers, f.interviews, f.session_model, f.question
)
SELECT f.study, f.session_model, f.question,
       CASE WHEN NOT s.suppressed THEN f.answers END    AS answers,
       CASE WHEN NOT s.suppressed THEN f.interviews END AS interviews,
       CASE WHEN NOT s.suppressed THEN f.examples END   AS examples,
       s.suppressed, f.job_id
FROM flagged f
LEFT JOIN complement c ON c.job_id = f.job_id AND c.session_model = f.session_model
                      AND c.question IS NOT DISTINCT FROM f.question
CROSS JOIN LATERAL (SELECT f.primary_suppressed OR c.job_id IS NOT NULL AS suppressed) s;
COMMENT ON COLUMN reporting.no_opinion.suppressed IS
    'true when 1..K-1 distinct interviews are behind the row, or when it is the smallest other row of a job '
    'with exactly one such row (complementary, so the job''s total minus the published rows never isolates one)';
