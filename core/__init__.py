"""What every app shares and none owns: errors, versions by compare-and-swap, pagination, lookups,
the common parts of the REST and Connect adapters, page helpers. It imports no app."""
