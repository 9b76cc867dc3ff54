//! Benchmarks live in `benches/`; `ratios.py` turns criterion's estimates
//! into the ratios the closing notes report.
