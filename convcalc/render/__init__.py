"""Output: one Format, one table printer, one unit scaler; layer, network and check renderers."""
