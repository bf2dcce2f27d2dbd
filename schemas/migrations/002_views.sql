-- The public read surface. Each view reads the latest succeeded job of each study.

-- latest_jobs: one row per study, its most recent succeeded analysis job.
CREATE VIEW latest_jobs AS
SELECT DISTINCT ON (study) study, job_id, finished_at
FROM jobs
WHERE status = 'succeeded' AND kind = 'analyze'
ORDER BY study, finished_at DESC, job_id;

-- theme_by_model: per theme and session model, how many answers and interviews fall in the
-- theme and what share of that model's answers they are.
CREATE VIEW theme_by_model AS
SELECT l.study, s.theme_id, t.label, s.session_model, s.answers, s.interviews, s.share,
       t.keywords, t.labeller, l.job_id
FROM latest_jobs l
JOIN theme_model_stats s USING (job_id)
JOIN themes t USING (job_id, theme_id);

-- theme_summary: one row per theme with its size and its three most representative quotes.
CREATE VIEW theme_summary AS
SELECT l.study, t.theme_id, t.label, t.keywords, t.labeller, t.answers, t.interviews,
       array_agg(u.answer ORDER BY q.rank) AS quotes, l.job_id
FROM latest_jobs l
JOIN themes t USING (job_id)
LEFT JOIN theme_quotes q USING (job_id, theme_id)
LEFT JOIN units u USING (unit_id)
GROUP BY l.study, t.theme_id, t.label, t.keywords, t.labeller, t.answers, t.interviews, l.job_id;

-- theme_answers: every answer with its theme, question, interview and session model.
CREATE VIEW theme_answers AS
SELECT l.study, a.theme_id, t.label, u.session_model, u.interview_id, i.external_id,
       u.unit_id, u.question, u.answer, l.job_id
FROM latest_jobs l
JOIN assignments a USING (job_id)
JOIN units u USING (unit_id)
JOIN interviews i USING (interview_id)
LEFT JOIN themes t ON t.job_id = a.job_id AND t.theme_id = a.theme_id;
