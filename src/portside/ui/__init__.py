"""The dashboard served at ``/ui`` by the API server (docs/dashboard.md).

- ``collect``: reads what the page shows from the control plane (the only module here with I/O on the store);
- ``views``: pure functions turning those documents into the page's view state (unit-tested from fixtures);
- ``sessions``: sign-in sessions and their CSRF tokens;
- ``live``: the server-sent event streams, woken by the store's commits and the plane's change topics;
- ``actions``: the page's buttons, each mapped onto the API operation a CLI user would call;
- ``routes``: the HTTP handlers, access checks and security headers; ``static/``: the page itself.
"""
