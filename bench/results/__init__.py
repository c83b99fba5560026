"""The results schema shared by the runner (which writes it) and the report (which reads it); see
:mod:`bench.results.schema`."""
