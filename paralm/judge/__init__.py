"""LLM-as-judge: rubrics, strict reply parsing, judging through paralm.api. Never imports torch."""
