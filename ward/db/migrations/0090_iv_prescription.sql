-- IV prescription in the care plan (issue 11.7): the drug, beside the rate, volume, start and
-- pump type added in 0020. Expected end = start + volume / rate (alerting.care_plan).
ALTER TABLE care_plans ADD COLUMN infusion_drug text;
