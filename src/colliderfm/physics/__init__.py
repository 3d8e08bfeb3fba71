"""Pure, batched physics functions (torch) with no state."""
