-- The stance columns' comments (012, 016) stated a rule the job does not apply: "at least 60% of
-- the theme's opinion units" — the job (miner/opinion_job.py unit_theme_stance, off_topic_themes)
-- takes the side of at least 60% of the units that take a side, once at least 30% do, and calls a
-- theme of off-topic chatter neutral. On the sample study a theme with 59% positive units (65% of its
-- polar ones) is positive; on HALIE one with 59% (63%). A tree node counts each answer under it with
-- its theme's stance. Only the meaning is re-worded: no view, column or row changes.
COMMENT ON COLUMN reporting.themes.stance IS
    'positive or negative when at least 30% of the theme''s opinion units take a side and at least 60% of '
    'those take that one; neutral when fewer than 30% take a side or most units are off-topic chatter; else '
    'mixed (NULL when the theme is suppressed)';
COMMENT ON COLUMN reporting.theme_by_model.stance IS
    'the theme''s stance (themes.stance: positive, negative, mixed or neutral; NULL when the theme is suppressed)';
COMMENT ON COLUMN reporting.theme_tree.stance IS
    'the node''s stance: a theme''s own; an area''s or group''s the stance held by at least 60% of the answers '
    'under it, each answer counted with its theme''s stance, else mixed (NULL when the node is suppressed, or '
    'when the job''s themes have no stance)';
