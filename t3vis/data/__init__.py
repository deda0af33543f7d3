"""Datasets: reading CSV, TSV, JSONL, Parquet, `datasets` folders and TREC files into ExampleSets."""
