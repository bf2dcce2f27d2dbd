-- The theme tree (issue 15): each job's themes grouped into top-level areas and, for big studies, a
-- middle level (miner/tree.py), with per-node counts overall and per session model. Written by the
-- job's aggregate step; node ids stay stable over runs like theme ids. Read through
-- reporting.theme_tree and reporting.theme_tree_by_model under the same privacy rules as the other
-- reporting views (schemas/migrations/006_reporting.sql).

CREATE TABLE tree_nodes (
    job_id     uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    node_id    text NOT NULL,               -- area:N, group:N or theme:<theme_id>
    parent_id  text,                        -- NULL for a top-level area
    level      integer NOT NULL CHECK (level >= 1),
    kind       text NOT NULL CHECK (kind IN ('area', 'group', 'theme')),
    theme_id   integer,                     -- theme leaves only
    theme_ids  integer[] NOT NULL,          -- every theme under the node
    label      text NOT NULL,               -- '' for theme leaves: the theme's own label is shown
    keywords   text[] NOT NULL DEFAULT '{}',
    labeller   text NOT NULL,
    stance     text,                        -- filled by the opinion layer (issue 12); NULL until then
    position   integer NOT NULL,            -- depth-first order: parents first, larger siblings first
    answers    integer NOT NULL,
    interviews integer NOT NULL,
    PRIMARY KEY (job_id, node_id),
    FOREIGN KEY (job_id, parent_id) REFERENCES tree_nodes (job_id, node_id) ON DELETE CASCADE,
    CHECK ((kind = 'theme') = (theme_id IS NOT NULL))
);

CREATE TABLE tree_node_model_stats (
    job_id        uuid NOT NULL,
    node_id       text NOT NULL,
    session_model text NOT NULL,
    answers       integer NOT NULL,             -- this model's answers under the node
    interviews    integer NOT NULL,             -- distinct interviews behind them
    share         double precision NOT NULL,    -- answers / all of the model's answers in the job
    prevalence    double precision NOT NULL,    -- interviews / all of the model's interviews in the job
    PRIMARY KEY (job_id, node_id, session_model),
    FOREIGN KEY (job_id, node_id) REFERENCES tree_nodes ON DELETE CASCADE
);

-- tree_cells (internal, not granted): every node × model cell with its suppression verdict. A
-- theme leaf takes its theme × model verdict from reporting_cells, so the tree never shows what
-- reporting.theme_by_model withholds; a parent applies the same 1..K-1 interviews rule.
CREATE VIEW tree_cells AS
SELECT s.job_id, s.node_id, s.session_model, s.answers, s.interviews, s.share, s.prevalence,
       (s.interviews BETWEEN 1 AND k.k - 1 OR coalesce(c.suppressed, false)) AS suppressed,
       n.interviews < k.k AS node_suppressed
FROM tree_node_model_stats s
JOIN tree_nodes n USING (job_id, node_id)
CROSS JOIN (SELECT min_interviews_per_cell AS k FROM reporting_settings) k
LEFT JOIN reporting_cells c ON c.job_id = s.job_id AND c.theme_id = n.theme_id
                           AND c.session_model = s.session_model;

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.theme_tree AS
SELECT l.study, n.node_id, n.parent_id, n.level, n.kind, n.theme_id,
       CASE WHEN NOT sup.s THEN coalesce(t.label, n.label) END AS label,
       CASE WHEN NOT sup.s THEN (CASE WHEN n.kind = 'theme' THEN t.keywords ELSE n.keywords END) END AS keywords,
       CASE WHEN n.kind = 'theme' THEN t.labeller ELSE n.labeller END AS labeller,
       CASE WHEN NOT sup.s THEN n.stance END AS stance,
       CASE WHEN NOT sup.s THEN n.answers END AS answers,
       CASE WHEN NOT sup.s THEN n.interviews END AS interviews,
       cardinality(n.theme_ids) AS themes,
       n.position, sup.s AS suppressed, l.job_id
FROM latest_jobs l
JOIN tree_nodes n USING (job_id)
LEFT JOIN themes t ON t.job_id = n.job_id AND t.theme_id = n.theme_id
CROSS JOIN LATERAL (SELECT n.interviews < min_interviews_per_cell AS s FROM reporting_settings) sup;
COMMENT ON VIEW reporting.theme_tree IS
    'The published job''s themes as a tree: top-level areas, a middle level in big studies, themes as leaves. '
    'Order by position for a depth-first listing.';
COMMENT ON COLUMN reporting.theme_tree.study IS 'study name';
COMMENT ON COLUMN reporting.theme_tree.node_id IS
    'area:N, group:N or theme:<theme_id>; area and group ids stay stable over runs like theme ids';
COMMENT ON COLUMN reporting.theme_tree.parent_id IS 'the parent node; NULL for a top-level area';
COMMENT ON COLUMN reporting.theme_tree.level IS 'depth: 1 = top-level area, 2 = middle group or theme, 3 = theme';
COMMENT ON COLUMN reporting.theme_tree.kind IS 'area, group or theme';
COMMENT ON COLUMN reporting.theme_tree.theme_id IS 'the theme (join reporting.themes); NULL for areas and groups';
COMMENT ON COLUMN reporting.theme_tree.label IS
    'a theme''s own label; for areas and groups c-TF-IDF keywords of their answers, or the LLM''s name; '
    'NULL when the node is suppressed';
COMMENT ON COLUMN reporting.theme_tree.keywords IS 'top c-TF-IDF phrases of the node''s answers against its level';
COMMENT ON COLUMN reporting.theme_tree.labeller IS 'who produced the label: extractive, or llm:<model>';
COMMENT ON COLUMN reporting.theme_tree.stance IS
    'the node''s prevailing stance from the opinion layer (issue 12); NULL until that layer computes one';
COMMENT ON COLUMN reporting.theme_tree.answers IS 'answers under the node, all models';
COMMENT ON COLUMN reporting.theme_tree.interviews IS 'distinct interviews behind those answers';
COMMENT ON COLUMN reporting.theme_tree.themes IS 'themes under the node (1 for a theme)';
COMMENT ON COLUMN reporting.theme_tree.position IS 'depth-first order: parents first, larger siblings first';
COMMENT ON COLUMN reporting.theme_tree.suppressed IS
    'true when fewer than K interviews are under the node: label, keywords, stance and numbers are NULL';
COMMENT ON COLUMN reporting.theme_tree.job_id IS 'the published job';

-- ---------------------------------------------------------------------------------------------
CREATE VIEW reporting.theme_tree_by_model AS
SELECT l.study, c.node_id, n.parent_id, n.level, n.kind, n.theme_id,
       CASE WHEN NOT c.node_suppressed THEN coalesce(t.label, n.label) END AS label,
       c.session_model,
       CASE WHEN NOT c.suppressed THEN c.answers END    AS answers,
       CASE WHEN NOT c.suppressed THEN c.interviews END AS interviews,
       CASE WHEN NOT c.suppressed THEN c.share END      AS share,
       CASE WHEN NOT c.suppressed THEN c.prevalence END AS prevalence,
       n.position, c.suppressed, l.job_id
FROM latest_jobs l
JOIN tree_cells c USING (job_id)
JOIN tree_nodes n USING (job_id, node_id)
LEFT JOIN themes t ON t.job_id = n.job_id AND t.theme_id = n.theme_id;
COMMENT ON VIEW reporting.theme_tree_by_model IS
    'Per node of the theme tree × session model: answers, share and prevalence; small cells suppressed.';
COMMENT ON COLUMN reporting.theme_tree_by_model.study IS 'study name';
COMMENT ON COLUMN reporting.theme_tree_by_model.node_id IS 'the node (reporting.theme_tree.node_id)';
COMMENT ON COLUMN reporting.theme_tree_by_model.parent_id IS 'its parent; NULL for a top-level area';
COMMENT ON COLUMN reporting.theme_tree_by_model.level IS 'depth: 1 = top-level area';
COMMENT ON COLUMN reporting.theme_tree_by_model.kind IS 'area, group or theme';
COMMENT ON COLUMN reporting.theme_tree_by_model.theme_id IS 'the theme; NULL for areas and groups';
COMMENT ON COLUMN reporting.theme_tree_by_model.label IS 'node label; NULL when the whole node is suppressed';
COMMENT ON COLUMN reporting.theme_tree_by_model.session_model IS 'the model the interviewed people had used';
COMMENT ON COLUMN reporting.theme_tree_by_model.answers IS 'this model''s answers under the node';
COMMENT ON COLUMN reporting.theme_tree_by_model.interviews IS 'distinct interviews behind them';
COMMENT ON COLUMN reporting.theme_tree_by_model.share IS
    'answers / all of this model''s answers in the job (unthemed answers included)';
COMMENT ON COLUMN reporting.theme_tree_by_model.prevalence IS
    'share of the model''s interviews (all of them, low-quality included) with an answer under the node';
COMMENT ON COLUMN reporting.theme_tree_by_model.position IS 'the node''s depth-first position';
COMMENT ON COLUMN reporting.theme_tree_by_model.suppressed IS
    'true when 1..K-1 distinct interviews back the cell (or, for a theme, its theme × model cell is suppressed): '
    'numbers are NULL';
COMMENT ON COLUMN reporting.theme_tree_by_model.job_id IS 'the published job';
