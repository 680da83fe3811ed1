"""The runner worker process: hosts models from the store, batches adaptively, serves gRPC.

Layers: ``servicer`` (protobuf in/out) -> ``inference``/``hosting`` (data plane) ->
``batcher``/``batch_ops``/``adaptive`` (domain, no grpc) -> ``runner`` (model thread);
``app`` wires them and owns the lifecycle; ``settings`` is the one settings object.
"""
