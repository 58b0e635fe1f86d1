"""RootFi's API as this project uses it: requests, their pace, and what their answers prove.

    client.py     `RootFiClient` over httpx: create customers (one, or an async write), follow
                  syncs and their jobs, list customers and companies, page by cursor
    governor.py   the key's pace: a token bucket that listens to RootFi's rate-limit headers,
                  shared between runs through a Prefect global concurrency limit
    delivery.py   `Delivery`: send a batch (one create each, or async writes split while
                  refused), follow it to its end, and say what became of each customer
    lookup.py     `Lookup`: find what a request without an answer did, before any resend
    matching.py   is this record the customer we sent? values compared as platforms keep them
    decisions.py  the delivery rules as pure functions: may a customer be sent again, and when

Nothing here reads or writes a database: delivery asks the ledger through one object, the
`delivery.Book` protocol (a run's ledger bound by `rootfi_sync.run.parts.RunBook`).
"""
