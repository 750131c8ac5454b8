"""Models and a view the benchmarks need and the package must not ship."""
