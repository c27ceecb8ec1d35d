-- Rows imported from the original CCGate's usage files (`ccgate import-usage`): marked, so reports and audits can
-- tell history from metered traffic, with the cost the original recorded kept beside CCGate's own repricing
-- (`cost_nanousd`). NULL `original_cost_nanousd` on every row CCGate metered itself.
ALTER TABLE requests ADD COLUMN imported INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN original_cost_nanousd INTEGER;
