-- theme_tree.stance has been filled since the opinion layer became a job step (012); its comment
-- (009) still said NULL until then. Only the meaning changes: no view, column or row.
COMMENT ON COLUMN reporting.theme_tree.stance IS
    'the node''s stance: a theme''s own; an area''s or group''s the stance of at least 60% of the answers '
    'under it, else mixed (NULL when the node is suppressed, or when the job''s themes have no stance)';
