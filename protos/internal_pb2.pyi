from protos import grpc_service_pb2 as _grpc_service_pb2
from protos import model_config_pb2 as _model_config_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ForwardItem(_message.Message):
    __slots__ = ("request", "timeout_s", "traceparent")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    request: bytes
    timeout_s: float
    traceparent: str
    def __init__(self, request: _Optional[bytes] = ..., timeout_s: _Optional[float] = ..., traceparent: _Optional[str] = ...) -> None: ...

class ForwardBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ForwardItem]
    def __init__(self, items: _Optional[_Iterable[_Union[ForwardItem, _Mapping]]] = ...) -> None: ...

class ForwardResult(_message.Message):
    __slots__ = ("response", "code", "message")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    response: bytes
    code: int
    message: str
    def __init__(self, response: _Optional[bytes] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ForwardBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ForwardResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ForwardResult, _Mapping]]] = ...) -> None: ...

class DescribeModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HostedModel(_message.Message):
    __slots__ = ("name", "version", "ready", "default_method", "methods", "metadata", "config", "created_unix_s")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_METHOD_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    ready: bool
    default_method: str
    methods: _containers.RepeatedScalarFieldContainer[str]
    metadata: _grpc_service_pb2.ModelMetadataResponse
    config: _model_config_pb2.ModelConfig
    created_unix_s: float
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., ready: _Optional[bool] = ..., default_method: _Optional[str] = ..., methods: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Union[_grpc_service_pb2.ModelMetadataResponse, _Mapping]] = ..., config: _Optional[_Union[_model_config_pb2.ModelConfig, _Mapping]] = ..., created_unix_s: _Optional[float] = ...) -> None: ...

class DescribeModelsResponse(_message.Message):
    __slots__ = ("worker_id", "device", "serving", "models", "local_socket")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_SOCKET_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    device: str
    serving: bool
    models: _containers.RepeatedCompositeFieldContainer[HostedModel]
    local_socket: str
    def __init__(self, worker_id: _Optional[str] = ..., device: _Optional[str] = ..., serving: _Optional[bool] = ..., models: _Optional[_Iterable[_Union[HostedModel, _Mapping]]] = ..., local_socket: _Optional[str] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DrainResponse(_message.Message):
    __slots__ = ("pending_requests",)
    PENDING_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    pending_requests: int
    def __init__(self, pending_requests: _Optional[int] = ...) -> None: ...
