-- The theme tree gave suppressed counts back by subtraction (no count back by subtraction, views.md):
-- * reporting.theme_tree's answers and interviews counted every cell under a node, so a theme leaf's
--   total minus its published theme × model cells (or minus reporting.themes, which counts published
--   cells only) was its one suppressed cell. They now count the node's published cells only, as
--   reporting.themes does: a node's total minus its published theme_tree_by_model rows is 0.
-- * a node × model cell holding exactly one suppressed theme cell gave it back as the node's cell
--   minus its published children. Such a node cell is now suppressed with it (complementary, as in
--   reporting_cells); a node cell over two or more suppressed theme cells shows only their sum.
-- Columns, types and rows are unchanged.

CREATE OR REPLACE VIEW tree_cells AS
WITH hidden AS (  -- per node × model: how many suppressed theme × model cells are under it
    SELECT n.job_id, n.node_id, r.session_model, count(*) AS cells
    FROM tree_nodes n
    JOIN reporting_cells r ON r.job_id = n.job_id AND r.theme_id = ANY (n.theme_ids)
    WHERE r.suppressed
    GROUP BY n.job_id, n.node_id, r.session_model
)
SELECT s.job_id, s.node_id, s.session_model, s.answers, s.interviews, s.share, s.prevalence,
       (s.interviews BETWEEN 1 AND k.k - 1 OR coalesce(c.suppressed, false) OR coalesce(h.cells, 0) = 1) AS suppressed,
       n.interviews < k.k AS node_suppressed
FROM tree_node_model_stats s
JOIN tree_nodes n USING (job_id, node_id)
CROSS JOIN (SELECT min_interviews_per_cell AS k FROM reporting_settings) k
LEFT JOIN reporting_cells c ON c.job_id = s.job_id AND c.theme_id = n.theme_id
                           AND c.session_model = s.session_model
LEFT JOIN hidden h ON h.job_id = s.job_id AND h.node_id = s.node_id AND h.session_model = s.session_model;

CREATE OR REPLACE VIEW reporting.theme_tree AS
SELECT l.study, n.node_id, n.parent_id, n.level, n.kind, n.theme_id,
       CASE WHEN NOT sup.s THEN coalesce(t.label, n.label) END AS label,
       CASE WHEN NOT sup.s THEN (CASE WHEN n.kind = 'theme' THEN t.keywords ELSE n.keywords END) END AS keywords,
       CASE WHEN n.kind = 'theme' THEN t.labeller ELSE n.labeller END AS labeller,
       CASE WHEN NOT sup.s THEN n.stance END AS stance,
       -- each interview has one session model, so the published cells' distinct interviews add up
       CASE WHEN NOT sup.s THEN p.answers END AS answers,
       CASE WHEN NOT sup.s THEN p.interviews END AS interviews,
       cardinality(n.theme_ids) AS themes,
       n.position, sup.s AS suppressed, l.job_id
FROM latest_jobs l
JOIN tree_nodes n USING (job_id)
LEFT JOIN themes t ON t.job_id = n.job_id AND t.theme_id = n.theme_id
LEFT JOIN (SELECT c.job_id, c.node_id,
                  coalesce(sum(c.answers) FILTER (WHERE NOT c.suppressed), 0)::integer AS answers,
                  coalesce(sum(c.interviews) FILTER (WHERE NOT c.suppressed), 0)::integer AS interviews
           FROM tree_cells c JOIN latest_jobs USING (job_id) GROUP BY c.job_id, c.node_id) p ON p.job_id = n.job_id AND p.node_id = n.node_id
CROSS JOIN LATERAL (SELECT n.interviews < min_interviews_per_cell AS s FROM reporting_settings) sup;
COMMENT ON COLUMN reporting.theme_tree.answers IS
    'answers under the node, all models, in its published cells only (suppressed node × model cells not '
    'counted, so no subtraction reveals them)';
COMMENT ON COLUMN reporting.theme_tree.interviews IS 'distinct interviews behind those answers (published cells only)';
COMMENT ON COLUMN reporting.theme_tree_by_model.suppressed IS
    'true when 1..K-1 distinct interviews back the cell, for a theme when its theme × model cell is suppressed, '
    'or when exactly one theme × model cell under the node is (complementary): numbers are NULL';
