-- The complaint's reference number beside its case, so a case is found by the number the
-- consumer and the channel know (ListCases `complaint`).
ALTER TABLE cases ADD COLUMN reference text;
CREATE INDEX cases_by_reference ON cases (reference);
