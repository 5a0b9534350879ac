"""The auditors' side: reading the ledger and the published records back for a person or a
machine (lineage show, row, verify, the report). Read-only, and light: no ML library."""
