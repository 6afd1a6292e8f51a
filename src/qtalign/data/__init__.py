"""Task data: readers for the paper's files, JSONL and Hugging Face datasets; validation; demonstrations."""
