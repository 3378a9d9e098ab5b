"""The web console of ``coatcheck serve``: deployments, runs, the vault (metadata only) and
the actions on deployments, as server-rendered pages (Jinja2, autoescaped) with a JSON API and
live updates over server-sent events. Entry point: ``app.console_routes``; the admin token:
``admin_token``.

    app            console_routes: the routes, composed
    context        Console (what handlers share); page/api: access rules and headers
    guard          who is signed in; cross-site and CSRF checks; the security headers
    sessions       server-side sessions with a CSRF token each
    ratelimit      failed sign-ins per client
    admin_token    the token of `coatcheck serve token` (its hash on disk)
    login          /login, /logout
    pages          /, /deployments/{name}, /runs/{id} (+ artifacts), /vault
    confirm        actions behind a confirmation page
    operations     the four actions, over `Actions`
    api            /v1/console/... JSON
    live           /runs/{id}/events (SSE)
    static         /static/console.css, /static/live.js
    render         the Jinja2 environment
    deployment_view, run_view, vault_view, chart, transcript, files, artifacts: what pages show
"""
