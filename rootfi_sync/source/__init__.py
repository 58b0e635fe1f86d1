"""The user's source table, read and turned into RootFi payloads.

    rows.py       reading the source: keyset pages, keys of any type, rows that share a key
    transform.py  a source row to a `CustomerPayload`, or the rule it broke (pure)

The table itself (columns as declared and as read) is `rootfi_sync.ledger.tables`, beside the
ledger's: both are created and checked by `rootfi_sync.ledger.db`.
"""
