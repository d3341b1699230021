"""The Mixture-of-Experts workload: model, tokenizer and data, train / finetune / evaluate /
profile entry points that report through a JSON-line event stream. Imports without Django;
``workers.moe.config`` (the job schema the hub validates with) imports without torch too.

    from workers.moe.config import validate_config, config_json_schema, default_config
    from workers.moe.events import EventWriter, validate_event

See workers/moe/README.md.
"""
