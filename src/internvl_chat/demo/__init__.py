"""`make demo`: a tiny InternVL-Chat (small InternViT + MLP projector + SmolLM2-135M-Instruct) trained with the
V1.2 two-stage recipe on the synthetic data, evaluated, and chatting about an image, on a CPU in minutes."""
