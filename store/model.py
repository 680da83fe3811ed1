"""What a stored model is: its info, signatures, tensor specs, and how to load and run it."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from protos.errors import InvalidArgument, NotFound
from store.tag import Tag

if TYPE_CHECKING:
    from store.policy import TrustPolicy

__all__ = [
    "TensorSpec",
    "ModelSignature",
    "ModelInfo",
    "Model",
    "Runnable",
    "ModelContext",
    "API_VERSION",
    "INFO_FILE",
    "MANIFEST_FILE",
    "CUSTOM_OBJECTS_FILE",
    "SIGNATURE_FILE",
]

INFO_FILE = "info.json"
MANIFEST_FILE = "manifest.json"
CUSTOM_OBJECTS_FILE = "custom_objects.pkl"
SIGNATURE_FILE = "manifest.sig"
API_VERSION = "v1"  # of the info.json layout (BentoML's ModelInfo.api_version)

# the distribution whose version ``framework_versions`` reports, per framework
_FRAMEWORK_PACKAGES = {"sklearn": "scikit-learn", "torch": "torch"}


class ModelContext(dict):  # type: ignore[type-arg]
    """The environment a model was saved in: a dict, with BentoML's attribute names too."""

    @property
    def framework_name(self) -> str:
        return str(self.get("framework", ""))

    @property
    def framework_versions(self) -> dict[str, str]:
        """{distribution: version}, e.g. ``{"scikit-learn": "1.5.2"}``."""
        name = self.framework_name
        if not name:
            return {}
        return {_FRAMEWORK_PACKAGES.get(name, name): str(self.get("framework_version", ""))}

    @property
    def python_version(self) -> str:
        return str(self.get("python_version", ""))

    @property
    def runnerfleet_version(self) -> str:
        return str(self.get("runnerfleet_version", ""))


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor: numpy dtype name and shape (-1 = any size)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["dtype"]), tuple(int(d) for d in data["shape"]))


def _specs_to_list(specs: list[TensorSpec] | None) -> list[dict[str, Any]] | None:
    return None if specs is None else [s.to_dict() for s in specs]


def _specs_from_list(data: list[dict[str, Any]] | None) -> list[TensorSpec] | None:
    return None if data is None else [TensorSpec.from_dict(d) for d in data]


@dataclass(frozen=True)
class ModelSignature:
    """How a method may be called: batchable, batch axes (input, output) and tensor specs."""

    batchable: bool = False
    batch_dim: tuple[int, int] = (0, 0)
    input_spec: list[TensorSpec] | None = None
    output_spec: list[TensorSpec] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batchable": self.batchable,
            "batch_dim": list(self.batch_dim),
            "input_spec": _specs_to_list(self.input_spec),
            "output_spec": _specs_to_list(self.output_spec),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSignature:
        in_dim, out_dim = data.get("batch_dim", (0, 0))
        return cls(
            batchable=bool(data.get("batchable", False)),
            batch_dim=(int(in_dim), int(out_dim)),
            input_spec=_specs_from_list(data.get("input_spec")),
            output_spec=_specs_from_list(data.get("output_spec")),
        )


@dataclass(frozen=True)
class ModelInfo:
    """Everything recorded about one saved version (stored as info.json)."""

    name: str
    version: str
    module: str
    labels: dict[str, str]
    metadata: dict[str, Any]
    creation_time: dt.datetime
    signatures: dict[str, ModelSignature]
    context: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)
    api_version: str = API_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.context, ModelContext):
            object.__setattr__(self, "context", ModelContext(self.context))

    @property
    def tag(self) -> Tag:
        return Tag(self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "module": self.module,
            "labels": dict(self.labels),
            "metadata": self.metadata,
            "creation_time": self.creation_time.isoformat(),
            "signatures": {k: s.to_dict() for k, s in self.signatures.items()},
            "context": dict(self.context),
            "options": self.options,
            "api_version": self.api_version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        try:
            return cls(
                name=data["name"],
                version=data["version"],
                module=data["module"],
                labels=dict(data.get("labels", {})),
                metadata=dict(data.get("metadata", {})),
                creation_time=dt.datetime.fromisoformat(data["creation_time"]),
                signatures={
                    k: ModelSignature.from_dict(v) for k, v in data.get("signatures", {}).items()
                },
                context=dict(data.get("context", {})),
                options=dict(data.get("options", {})),
                api_version=str(data.get("api_version", API_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"malformed model info: {exc}") from exc

    @classmethod
    def read(cls, path: str) -> ModelInfo:
        """Read ``info.json`` from a version directory."""
        try:
            with open(os.path.join(path, INFO_FILE), encoding="utf-8") as f:
                return cls.from_dict(json.load(f))
        except FileNotFoundError as exc:
            raise NotFound(f"no model at {path}") from exc
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"malformed {INFO_FILE} in {path}: {exc}") from exc


@dataclass
class Runnable:
    """A loaded model ready to call: numpy in, numpy (or tuple of numpy) out, per method."""

    methods: dict[str, Callable[..., Any]]
    device: str = "cpu"

    @property
    def default_method(self) -> str:
        """The only method, else ``__call__``, else ``predict``, else the first by name."""
        if len(self.methods) == 1:
            return next(iter(self.methods))
        for name in ("__call__", "predict"):
            if name in self.methods:
                return name
        return sorted(self.methods)[0]


@dataclass(frozen=True, repr=False, eq=False)
class Model:
    """One stored model version: ``tag``, ``path`` (its directory) and ``info``.

    Runner-free on purpose: ``runnerfleet.sdk.model.Model`` (what ``runnerfleet.models.get``
    returns) adds ``to_runner()`` on the floor above.

    ``verified`` is True once :func:`store.integrity.check_model` passed for this object, so a
    caller that checked first (the worker) does not pay for hashing twice.

    Equal and hashable by tag (as BentoML's), so models work as dict keys and in sets.
    """

    tag: Tag
    path: str
    info: ModelInfo
    verified: bool = field(default=False, compare=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other.tag == self.tag

    def __hash__(self) -> int:
        return hash(self.tag)

    def with_options(self, **options: Any) -> Model:
        """A copy whose ``info.options`` has ``options`` added (the stored version is unchanged)."""
        import dataclasses

        info = dataclasses.replace(self.info, options={**self.info.options, **options})
        return dataclasses.replace(self, info=info)

    @property
    def creation_time(self) -> dt.datetime:
        return self.info.creation_time

    def path_of(self, filename: str) -> str:
        """Absolute path of a file inside this version's directory."""
        return os.path.join(self.path, filename)

    @property
    def manifest_sha256(self) -> str:
        """sha256 of this version's manifest: which content this is (logged by workers)."""
        from store.integrity import manifest_sha256

        return manifest_sha256(self.path)

    def checked(self, policy: TrustPolicy | None = None) -> Model:
        """This model after the integrity/signature checks of ``policy`` (default: from env).

        Raises IntegrityError or SignatureError naming the file or key; nothing is unpickled.
        """
        if self.verified:
            return self
        from store.integrity import check_model
        from store.policy import policy_from_env

        return check_model(self, policy if policy is not None else policy_from_env())

    @cached_property
    def custom_objects(self) -> dict[str, Any]:
        """The custom objects saved with the model (unpickled on first access, once checked)."""
        path = self.path_of(CUSTOM_OBJECTS_FILE)
        if not os.path.exists(path):
            return {}
        self.checked()
        with open(path, "rb") as f:
            objects: dict[str, Any] = pickle.load(f)  # noqa: S301 - trusted store (DESIGN.md 2)
        return objects

    def load_model(self, device: str = "cpu", *, policy: TrustPolicy | None = None) -> Any:
        """The framework object itself (estimator, nn.Module), placed on ``device``.

        Every file is checked against the manifest first (``policy``, default from env).
        """
        from store.frameworks import get_adapter

        model = self.checked(policy)
        return get_adapter(self.info.module).load(model, device)

    def load_runnable(self, device: str = "cpu", *, policy: TrustPolicy | None = None) -> Runnable:
        """Load the model on ``device`` (checked first) and wrap each method as numpy -> numpy."""
        from store.frameworks import get_adapter

        model = self.checked(policy)
        adapter = get_adapter(self.info.module)
        obj = adapter.load(model, device)
        methods = {name: adapter.make_method(obj, name, device) for name in self.info.signatures}
        return Runnable(methods=methods, device=device)

    def __repr__(self) -> str:
        return f'Model(tag="{self.tag}", path="{self.path}")'
