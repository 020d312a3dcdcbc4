"""The running stack's lifecycle: `up` (fresh clone to healthy, idempotently),
`down`, `status` and `logs`."""
