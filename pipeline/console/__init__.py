"""The operations console: failed events grouped, inspected and replayed from a browser.

    app.py          create_app: the ASGI application and its composition
    settings.py     ConsoleSettings (PIPELINE_CONSOLE_*)
    auth.py         logging in against RabbitMQ; asking the broker what a user may do
    credentials.py  the pipeline's settings acting as the logged-in user
    session.py      sessions in memory, cookies, CSRF tokens
    guard.py        a page needs a session; an action also its CSRF token and origin
    login.py        /login, /logout
    pages.py        the overview and the failed groups
    event_pages.py  one event's page; search
    audit_pages.py  the audit list and one action's record
    actions.py      replay, purge, cancel, pause, resume (forms)
    runner.py       runs actions as the user, recorded in the audit log
    audit.py        the audit log (its own table)
    store_gate.py   one operation on the dead-letter store at a time
    groups.py       failed events grouped by consumer, event type and error type
    overview.py     the overview's numbers (``pipeline status`` and the ledger)
    ledger_view.py  the ledger's answers for pages, never failing a page
    answer.py       a page's broker reads as (answer, sentence)
    protocols.py    FlowControl: the pause/resume seam; flow.py its default (none yet)
    rendering.py    templates and their filters
    server.py       uvicorn (``pipeline console``)

It needs the ``console`` extra (Starlette, Jinja2, uvicorn); importing this
package imports none of them. docs/console.md.
"""
