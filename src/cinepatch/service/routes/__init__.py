"""The routes, one module per resource: ``videos`` (OpenAI's Videos API), ``edits``
(cinepatch's own edits, in the same style) and ``studio`` (the web page, its login, health)."""
