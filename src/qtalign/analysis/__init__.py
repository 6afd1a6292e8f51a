"""Looking inside the model: logit lens and PCA/alignment of hidden states (plain arrays, no plotting)."""
