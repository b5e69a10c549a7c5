"""What editors ask: `queries.py` answers, from the checker's own stages, what stands at a position
of a (maybe half-typed) document and what may be typed there; `server.py` is the language server
(`archdsl lsp`, pygls), a thin protocol shell over the queries. Named `ide`, not `editor`, so that
it does not clash with the repository's `editors/` folder (the editor extensions)."""
