"""The live desk wallboard: ``/wallboard`` serves a page (static files in ``static/``) that
signs in with a ``tickets:read`` token and follows ``/wallboard/events``."""
