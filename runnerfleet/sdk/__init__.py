"""The SDK types floor: Runner, Service, io and the Model face with ``to_runner``.

Below the processes (``api_gateway``, ``runner_worker``) that use these types and above
``store/``; nothing here imports a process, the CLI or grpc. ``runnerfleet/__init__.py`` and the
old paths (``runnerfleet.runner``, ``runnerfleet.service``, ``runnerfleet.io``) re-export them.
Import the submodules (``runnerfleet.sdk.runner`` ...) directly: this package loads nothing
itself, so ``import runnerfleet`` stays light.
"""

__all__: list[str] = []
