-- The theme tree's per-model prevalence follows theme prevalence's definition (prevalence_stats,
-- reporting.theme_by_model): the share of the model's interviews with an answer under the node,
-- low-quality interviews left out unless the job's insight run included them. Before, the tree
-- counted all interviews, so one theme × model cell showed two numbers in the report (explorer
-- bar 59%, theme card 61%). The tree step runs before the quality verdicts exist; the statistics
-- (miner.steps.job_statistics) restate the numbers with this function once they do, and below it
-- restates those of every job stored before this migration.
ALTER TABLE tree_node_model_stats ALTER COLUMN prevalence DROP NOT NULL;
COMMENT ON COLUMN tree_node_model_stats.prevalence IS
    'interviews with an answer under the node / the model''s interviews in the job, both without the low-quality '
    'ones unless the job included them (as prevalence_stats counts them); NULL when the model has no included '
    'interview or no included interview touches the node';

-- Counted as miner.repository_nightly counts theme prevalence: included_themed over included_totals.
CREATE FUNCTION restate_tree_prevalence(p_job uuid, p_exclude_low_quality boolean) RETURNS void
LANGUAGE sql AS $$
    WITH left_out AS (
        SELECT interview_id FROM quality_verdicts WHERE p_exclude_low_quality AND job_id = p_job AND low_quality),
    totals AS (
        SELECT u.session_model, count(DISTINCT u.interview_id) AS interviews
        FROM (SELECT unit_id FROM job_answers WHERE job_id = p_job
              UNION ALL SELECT unit_id FROM job_units WHERE job_id = p_job) j JOIN units u USING (unit_id)
        WHERE u.interview_id NOT IN (SELECT interview_id FROM left_out) GROUP BY 1),
    touched AS (
        SELECT n.node_id, u.session_model, count(DISTINCT u.interview_id) AS interviews
        FROM tree_nodes n CROSS JOIN unnest(n.theme_ids) AS t(theme_id)
        JOIN assignments a ON a.job_id = n.job_id AND a.theme_id = t.theme_id
        JOIN job_units j ON j.job_id = a.job_id AND j.unit_id = a.unit_id
        JOIN units u ON u.unit_id = a.unit_id
        WHERE n.job_id = p_job AND u.interview_id NOT IN (SELECT interview_id FROM left_out)
        GROUP BY 1, 2)
    -- As miner.stats.prevalence_from: none for a model without included interviews, nor for a node
    -- that no included interview touches.
    UPDATE tree_node_model_stats s
    SET prevalence = CASE WHEN EXISTS (SELECT 1 FROM touched x WHERE x.node_id = s.node_id) THEN
        (SELECT coalesce(x.interviews, 0)::double precision / t.interviews
         FROM totals t LEFT JOIN touched x ON x.node_id = s.node_id AND x.session_model = t.session_model
         WHERE t.session_model = s.session_model) END
    WHERE s.job_id = p_job;
$$;
REVOKE EXECUTE ON FUNCTION restate_tree_prevalence(uuid, boolean) FROM PUBLIC;  -- the pipeline's, not readers'

SELECT restate_tree_prevalence(r.job_id, NOT r.low_quality_included)
FROM insight_runs r WHERE EXISTS (SELECT 1 FROM tree_nodes n WHERE n.job_id = r.job_id);

COMMENT ON COLUMN reporting.theme_tree_by_model.prevalence IS
    'share of the model''s interviews with an answer under the node, low-quality interviews left out (as '
    'reporting.theme_by_model.prevalence: a theme''s row has the same number)';
