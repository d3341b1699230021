"""Jobs: train, evaluate, profile and finetune the MoE model in sandboxed Celery workers."""
