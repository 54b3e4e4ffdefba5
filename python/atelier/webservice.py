"""Web services: images deployed as HTTP scoring endpoints, modelled on Azure ML v1's Webservice
classes, so deployment scripts port with an import change::

    from atelier import AksWebservice, Image, Webservice
    config = AksWebservice.deploy_configuration(autoscale_enabled=True, autoscale_min_replicas=1,
                                                autoscale_max_replicas=8)
    service = Webservice.deploy_from_image(ws, "diabetes", Image(ws, "diabetes-svc"), config)
    service.wait_for_deployment(show_output=True)
    print(service.run(json.dumps({"data": [[0.03, 0.05]]})))
    primary, secondary = service.get_keys()

``Model.deploy(ws, name, models, inference_config, deployment_config)`` builds the image first.
Every deployment configuration class (LocalWebservice, AciWebservice, AksWebservice) deploys to
the server's local target unless ``deployment_target`` names another; they differ in their
defaults, as in Azure ML (ACI: one replica, no auth; AKS: autoscaling, key auth). As in Azure
ML, ``Model.deploy(..., deployment_target=aks_target)`` with a kubernetes compute target
(``ComputeTarget(ws, "k8s-prod")``, attached with ``atelier compute attach k8s-prod --kind
kubernetes``) deploys to that cluster: a Deployment per image in the target's namespace.
"""

import json
import math
import re
import sys
import threading
import time
import urllib.parse

from ._http import ActivityFailedError, AtelierError, quote_seg

__all__ = ["AciWebservice", "AksWebservice", "DeploymentConfiguration", "LocalWebservice", "ModelProfile", "Webservice",
           "WebserviceException"]

_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
_SETTLED = ("Healthy", "Unhealthy", "Failed")


class WebserviceException(ActivityFailedError):
    """A deployment that failed, or a scoring request the service refused (``status`` is its
    HTTP status, ``details`` the service's details or answer)."""

    def __init__(self, message, details=None, status=0):
        super().__init__(message, details)
        self.code = "webservice_error"
        self.status = status


class DeploymentConfiguration:
    """How a service runs: Azure ML's deployment configuration, as the server names it."""

    def __init__(self, target=None, **config):
        self.target = target
        self.config = {k: v for k, v in config.items() if v is not None}

    def __repr__(self):
        return "DeploymentConfiguration(%r, %r)" % (self.target, self.config)

    def _body(self):
        c = dict(self.config)
        tags = c.pop("tags", None)
        description = c.pop("description", None)
        return c, tags, description


def _config(cpu_cores=None, memory_gb=None, tags=None, description=None, auth_enabled=None, token_auth_enabled=None,
            autoscale_enabled=None, autoscale_min_replicas=None, autoscale_max_replicas=None,
            autoscale_refresh_seconds=None, autoscale_target_utilization=None, collect_model_data=None,
            scoring_timeout_ms=None, replica_max_concurrent_requests=None, max_request_wait_time=None,
            num_replicas=None, target=None, **ignored):
    c = DeploymentConfiguration(target, cpu_cores=cpu_cores, memory_gb=memory_gb, tags=tags, description=description,
                                auth_enabled=auth_enabled, token_auth_enabled=token_auth_enabled,
                                autoscale_enabled=autoscale_enabled, autoscale_min_replicas=autoscale_min_replicas,
                                autoscale_max_replicas=autoscale_max_replicas,
                                autoscale_refresh_seconds=autoscale_refresh_seconds,
                                autoscale_target_utilization=autoscale_target_utilization,
                                collect_model_data=collect_model_data, scoring_timeout_ms=scoring_timeout_ms,
                                replica_max_concurrent_requests=replica_max_concurrent_requests,
                                max_request_wait_time=max_request_wait_time, replicas=num_replicas)
    c.ignored = sorted(k for k, v in ignored.items() if v is not None)
    return c


class LocalWebservice:
    """Azure ML's local deployment: one replica, no auth (``port`` is ignored: the service is
    served by the atelier server under /services/)."""

    @staticmethod
    def deploy_configuration(port=None, **kwargs):
        kwargs.setdefault("auth_enabled", False)
        kwargs.setdefault("num_replicas", 1)
        return _config(**kwargs)


class AciWebservice:
    """Azure Container Instances' defaults: one replica, no auth unless asked."""

    @staticmethod
    def deploy_configuration(cpu_cores=None, memory_gb=None, tags=None, properties=None, description=None,
                             location=None, auth_enabled=False, ssl_enabled=None, enable_app_insights=None,
                             ssl_cert_pem_file=None, ssl_key_pem_file=None, ssl_cname=None, dns_name_label=None,
                             primary_key=None, secondary_key=None, collect_model_data=None, cmk_vault_base_url=None,
                             cmk_key_name=None, cmk_key_version=None, vnet_name=None, subnet_name=None, **kwargs):
        return _config(cpu_cores=cpu_cores, memory_gb=memory_gb, tags=tags, description=description,
                       auth_enabled=auth_enabled, collect_model_data=collect_model_data, num_replicas=1, **kwargs)


class AksWebservice:
    """Azure Kubernetes Service's defaults: autoscaling from 1 to 10 replicas at 70 %, key auth."""

    @staticmethod
    def deploy_configuration(autoscale_enabled=None, autoscale_min_replicas=None, autoscale_max_replicas=None,
                             autoscale_refresh_seconds=None, autoscale_target_utilization=None,
                             collect_model_data=None, auth_enabled=None, cpu_cores=None, memory_gb=None,
                             enable_app_insights=None, scoring_timeout_ms=None, replica_max_concurrent_requests=None,
                             max_request_wait_time=None, num_replicas=None, primary_key=None, secondary_key=None,
                             tags=None, properties=None, description=None, gpu_cores=None, period_seconds=None,
                             initial_delay_seconds=None, timeout_seconds=None, success_threshold=None,
                             failure_threshold=None, namespace=None, token_auth_enabled=None, **kwargs):
        if autoscale_enabled is None:
            autoscale_enabled = num_replicas is None
        if autoscale_enabled:
            autoscale_min_replicas = 1 if autoscale_min_replicas is None else autoscale_min_replicas
            autoscale_max_replicas = 10 if autoscale_max_replicas is None else autoscale_max_replicas
        if auth_enabled is None:
            auth_enabled = not token_auth_enabled
        return _config(autoscale_enabled=autoscale_enabled, autoscale_min_replicas=autoscale_min_replicas,
                       autoscale_max_replicas=autoscale_max_replicas,
                       autoscale_refresh_seconds=autoscale_refresh_seconds,
                       autoscale_target_utilization=autoscale_target_utilization,
                       collect_model_data=collect_model_data, auth_enabled=auth_enabled,
                       token_auth_enabled=token_auth_enabled, cpu_cores=cpu_cores, memory_gb=memory_gb,
                       scoring_timeout_ms=scoring_timeout_ms,
                       replica_max_concurrent_requests=replica_max_concurrent_requests,
                       max_request_wait_time=max_request_wait_time, num_replicas=num_replicas, tags=tags,
                       description=description, **kwargs)


def _target_name(deployment_target, config):
    if deployment_target is None:
        return config.target if config is not None else None
    kind = getattr(deployment_target, "kind", None)
    if kind in ("local", "podman") and hasattr(deployment_target, "max_concurrent_runs"):
        # A compute target (a run queue, such as the AksCompute that ATELIER_AZURE_COMPUTE=local
        # makes): services of its kind run on the server's deployment target of that kind.
        return kind
    return getattr(deployment_target, "name", deployment_target)


def _image_ref(image):
    if isinstance(image, str):
        return image
    return "%s:%s" % (image.name, image.version)


class Webservice:
    """A web service of a workspace: ``Webservice(ws, name)``."""

    def __init__(self, workspace, name=None, _details=None):
        self.workspace = workspace
        self._client = workspace._client
        self._deployed = None  # (models, inference config) of Model.deploy / update / reload here
        if _details is not None:
            self._details = _details
            return
        if not name:
            raise ValueError("Webservice needs a name")
        self._details = self._client.request("GET", _path(workspace, name))

    # deploying

    @staticmethod
    def deploy_from_image(workspace, name, image, deployment_config=None, deployment_target=None, overwrite=False):
        """Deploys an image (an Image, or "name:version") as web service name and returns it,
        Transitioning: ``wait_for_deployment`` waits until it is Healthy. With overwrite, an
        existing service of that name is updated to the image instead (a rolling update)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise AtelierError("invalid web service name %r: use 3-32 lowercase letters, digits and '-', starting "
                               "with a letter and not ending with '-'" % (name,), code="invalid", status=400)
        body = {"name": name, "image": _image_ref(image)}
        target = _target_name(deployment_target, deployment_config)
        if target:
            body["target"] = target
        if deployment_config is not None:
            cfg, tags, description = deployment_config._body()
            body["config"] = cfg
            if tags:
                body["tags"] = {str(k): str(v) for k, v in tags.items()}
            if description:
                body["description"] = description
        try:
            d = workspace._client.request("POST", "/api/v1/workspaces/%s/services" % quote_seg(workspace.name),
                                          body=body)
        except AtelierError as e:
            if not (overwrite and e.status == 409):
                raise
            d = workspace._client.request("PATCH", _path(workspace, name), body=body)
        return Webservice(workspace, _details=d)

    @staticmethod
    def deploy_from_model(workspace, name, models, image_config, deployment_config=None, deployment_target=None,
                          overwrite=False):
        """Builds an image of models with image_config, then deploys it (as Model.deploy)."""
        from .image import Image

        image = Image.create(workspace, name + "-image", models, image_config)
        image.wait_for_creation()
        service = Webservice.deploy_from_image(workspace, name, image, deployment_config, deployment_target, overwrite)
        service._deployed = (list(models or []), image_config)
        return service

    @staticmethod
    def list(workspace, image_name=None, image_id=None, model_name=None, model_id=None, tags=None, properties=None,
             compute_type=None):
        """The workspace's services by name; filtered by the image they serve (name or
        "name:version") and tags (a dict, or a list of keys or "key=value")."""
        d = workspace._client.request("GET", "/api/v1/workspaces/%s/services" % quote_seg(workspace.name)) or {}
        out = [Webservice(workspace, _details=s) for s in d.get("services") or []]
        if image_id:
            out = [s for s in out if image_id in s.images]
        if image_name:
            out = [s for s in out if any(i.split(":")[0] == image_name for i in s.images)]
        if isinstance(tags, dict):
            tags = ["%s=%s" % kv for kv in tags.items()]
        for t in tags or []:
            k, _, v = str(t).partition("=")
            out = [s for s in out if k in s.tags and (not v or s.tags[k] == v)]
        return out

    def wait_for_deployment(self, show_output=False, timeout_sec=None):
        """Waits until the deployment is applied (Healthy, Unhealthy or Failed), printing the
        service log with show_output. Raises WebserviceException when it Failed."""
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        offset, delay = 0, 0.05
        while True:
            self.update_deployment_state()
            if show_output:
                text = self._client.request("GET", self._path("log"), query={"offset": offset}, raw=True)
                if text:
                    offset += len(text)
                    sys.stdout.write(text.decode("utf-8", "replace"))
                    sys.stdout.flush()
            if self.state in _SETTLED:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("service %s is still %s after %ss" % (self.name, self.state, timeout_sec))
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        if show_output:
            print("%s %s %s" % (self.name, self.state, self.scoring_uri or ""))
        if self.state == "Failed":
            raise WebserviceException("service %s Failed: %s" % (self.name, self.error), self.get_details())
        return self

    def update_deployment_state(self):
        """Reads the service's state again."""
        self._details = self._client.request("GET", self._path())

    # scoring

    def run(self, input_data):
        """Sends input_data (a JSON text, bytes, or a value to serialize) to the service's
        /score and returns the answer, decoded from JSON when it is JSON. Raises
        WebserviceException with the service's status and message when it refuses."""
        if isinstance(input_data, str):
            body = input_data.encode("utf-8")
        elif isinstance(input_data, (bytes, bytearray)):
            body = bytes(input_data)
        else:
            body = json.dumps(input_data).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        cfg = self._details.get("config") or {}
        if cfg.get("auth_enabled"):
            headers["Authorization"] = "Bearer " + self.get_keys()[0]
        path = "/services/%s/%s/score" % (quote_seg(self.workspace.name), quote_seg(self.name))
        try:
            data = self._client.request("POST", path, body=body, headers=headers, raw=True, retries=0)
        except AtelierError as e:
            raise WebserviceException("service %s answered %s: %s" % (self.name, e.status, e), e.details,
                                      status=e.status) from e
        text = data.decode("utf-8", "replace")
        try:
            return json.loads(text)
        except ValueError:
            return text

    def get_keys(self):
        """The service's (primary, secondary) keys."""
        k = self._client.request("GET", self._path("keys"))
        return k["primary_key"], k["secondary_key"]

    def regen_key(self, key):
        """Replaces the "Primary" or "Secondary" key."""
        self._client.request("POST", self._path("keys"), body={"key": str(key).lower()})

    def get_token(self):
        """For token auth: the caller's workspace token and when to refresh it (never)."""
        return self._client.token, None

    def get_logs(self, num_lines=5000, init=False):
        """The service log's last num_lines lines: its replicas' output, deployments, scale
        decisions and requests."""
        text = self._client.request("GET", self._path("log"), raw=True).decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-num_lines:])

    # changing

    def update(self, image=None, tags=None, properties=None, description=None, auth_enabled=None,
               token_auth_enabled=None, autoscale_enabled=None, autoscale_min_replicas=None,
               autoscale_max_replicas=None, autoscale_refresh_seconds=None, autoscale_target_utilization=None,
               collect_model_data=None, scoring_timeout_ms=None, replica_max_concurrent_requests=None,
               max_request_wait_time=None, num_replicas=None, cpu_cores=None, memory_gb=None, inference_config=None,
               models=None, deployment_config=None, wait=False, image_config=None, **kwargs):
        """Changes the service: a new image is a rolling update (no request fails); the
        configuration's fields given replace the service's. models and/or inference_config
        rebuild the image (<name>-image, this call waits for the build), taking what is not given
        from the previous deployment of this object (Model.deploy, reload, update), as Azure's
        LocalWebservice.update does; deployment_config (a *Webservice.deploy_configuration) gives
        the configuration's fields. Wait with wait_for_deployment (or wait=True)."""
        body = {}
        inference_config = inference_config or image_config
        if image is not None:
            body["image"] = _image_ref(image)
        elif inference_config is not None or models is not None:
            prev_models, prev_cfg = self._deployed if self._deployed else (None, None)
            cfg = inference_config or prev_cfg
            if cfg is None:
                raise NotImplementedError(
                    "update(models=...) without an inference_config needs the InferenceConfig this service was "
                    "deployed with, which this Webservice object does not have (it was not made by Model.deploy in "
                    "this process): pass inference_config=InferenceConfig(entry_script, ...) too")
            models = list(models) if models is not None else list(prev_models or [])
            body["image"] = _image_ref(self._build(models, cfg))
            self._deployed = (models, cfg)
        from_config = {}
        if deployment_config is not None:
            from_config, dtags, ddesc = deployment_config._body()
            if tags is None and dtags:
                tags = dtags
            if description is None and ddesc:
                description = ddesc
        given = {"auth_enabled": auth_enabled, "token_auth_enabled": token_auth_enabled,
                 "autoscale_enabled": autoscale_enabled, "autoscale_min_replicas": autoscale_min_replicas,
                 "autoscale_max_replicas": autoscale_max_replicas,
                 "autoscale_refresh_seconds": autoscale_refresh_seconds,
                 "autoscale_target_utilization": autoscale_target_utilization,
                 "collect_model_data": collect_model_data, "scoring_timeout_ms": scoring_timeout_ms,
                 "replica_max_concurrent_requests": replica_max_concurrent_requests,
                 "max_request_wait_time": max_request_wait_time, "replicas": num_replicas, "cpu_cores": cpu_cores,
                 "memory_gb": memory_gb}
        given = {k: v for k, v in given.items() if v is not None}
        for k, v in from_config.items():
            given.setdefault(k, v)
        if given:
            cfg = dict(self._details.get("config") or {})
            cfg.update(given)
            if num_replicas is not None and autoscale_enabled is None:
                cfg["autoscale_enabled"] = False
            if given.get("auth_enabled"):
                cfg["token_auth_enabled"] = False
            if given.get("token_auth_enabled"):
                cfg["auth_enabled"] = False
            body["config"] = cfg
        if tags is not None:
            body["tags"] = {str(k): str(v) for k, v in tags.items()}
        if description is not None:
            body["description"] = description
        self._details = self._client.request("PATCH", self._path(), body=body)
        if wait:
            self.wait_for_deployment()
        return self

    def reload(self, wait=True):
        """Azure's LocalWebservice.reload: re-reads the entry script and the source directory of
        the InferenceConfig this service was deployed with (Model.deploy or update in this
        process), rebuilds the image with them (only the changed source layer is new: the
        packages and models are reused) and rolls the service onto it. Unlike Azure's local
        reload, which copies the files into the running container, the new replicas start from
        the new image; with wait (the default) this returns once they serve, so run() right
        after answers with the new score.py. A score.py whose init() fails leaves the old
        replicas serving and raises WebserviceException."""
        if not self._deployed:
            raise NotImplementedError(
                "reload() re-reads the InferenceConfig this service was deployed with, and this Webservice object "
                "has none (it was not made by Model.deploy in this process): use "
                "update(models=[...], inference_config=InferenceConfig(entry_script, ...))")
        models, cfg = self._deployed
        self._details = self._client.request("PATCH", self._path(), body={"image": _image_ref(self._build(models, cfg))})
        if wait:
            self.wait_for_deployment()
        return self

    def deploy_to_cloud(self, name=None, deployment_config=None, deployment_target=None):
        """Azure's LocalWebservice.deploy_to_cloud: deploys the image this service serves as
        another service, name, with deployment_config (an AksWebservice or AciWebservice
        configuration) on deployment_target (a deployment target's name, or a compute target:
        a local or podman one means the server's deployment target of that kind). Returns it,
        Transitioning."""
        if not name:
            raise ValueError("deploy_to_cloud needs the name of the new service")
        images = self.images
        if not images:
            raise WebserviceException("service %s serves no image yet" % self.name)
        service = Webservice.deploy_from_image(self.workspace, name, images[0], deployment_config, deployment_target)
        service._deployed = self._deployed
        return service

    def _build(self, models, inference_config):
        from .image import Image

        img = Image.create(self.workspace, _image_name(self.name), models or [], inference_config)
        img.wait_for_creation()
        return img

    def delete(self):
        """Stops the service's replicas and deletes it."""
        self._client.request("DELETE", self._path())

    # attributes

    @property
    def name(self):
        return self._details.get("name")

    @property
    def state(self):
        return self._details.get("state")

    @property
    def error(self):
        return self._details.get("error") or None

    @property
    def scoring_uri(self):
        return self._details.get("scoring_uri")

    @property
    def port(self):
        """The port the service is served at: its scoring URI's (the atelier server's gateway;
        LocalWebservice.deploy_configuration's port is not used)."""
        u = self.scoring_uri
        if not u:
            return None
        parts = urllib.parse.urlsplit(u)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def swagger_uri(self):
        return self._details.get("swagger_uri")

    @property
    def images(self):
        return [i["image"] for i in self._details.get("images") or []]

    @property
    def image_id(self):
        images = self.images
        return images[0] if images else None

    @property
    def tags(self):
        return dict(self._details.get("tags") or {})

    @property
    def description(self):
        return self._details.get("description")

    @property
    def compute_type(self):
        return self._details.get("target")

    @property
    def auth_enabled(self):
        return bool((self._details.get("config") or {}).get("auth_enabled"))

    @property
    def token_auth_enabled(self):
        return bool((self._details.get("config") or {}).get("token_auth_enabled"))

    @property
    def replicas(self):
        """Live replica counts: desired, ready, busy, queued."""
        return dict(self._details.get("replicas") or {})

    @property
    def created_time(self):
        from .model import _parse_time

        return _parse_time(self._details.get("created_at"))

    def get_details(self):
        return dict(self._details)

    def serialize(self):
        return dict(self._details)

    def __repr__(self):
        return "Webservice(workspace=%s, name=%s, state=%s, scoring_uri=%s)" % (
            self.workspace.name, self.name, self.state, self.scoring_uri)

    def _path(self, *tail):
        return "/".join([_path(self.workspace, self.name)] + list(tail))


def _image_name(service):
    return re.sub(r"[^a-z0-9]+", "-", service.lower()).strip("-") + "-image"


def _path(workspace, name):
    return "/api/v1/workspaces/%s/services/%s" % (quote_seg(workspace.name), quote_seg(name))


# Azure's limits of a profile's requested resources, and its defaults.
MIN_PROFILE_CPU, MAX_PROFILE_CPU, DEFAULT_PROFILE_CPU = 0.1, 3.5, 3.5
MIN_PROFILE_MEMORY, MAX_PROFILE_MEMORY, DEFAULT_PROFILE_MEMORY = 0.1, 15.0, 15.0
_GB = 1024 ** 3
_CPU_WINDOW = 0.25  # seconds of requests over which the replica's CPU use is averaged


class ModelProfile:
    """The result of ``Model.profile``, as Azure's: ``wait_for_completion(show_output)`` waits,
    ``get_details()`` has Azure's keys (requestedCpu, requestedMemoryInGB, maxUtilizedCpu,
    maxUtilizedMemoryInGB, recommendedCpu, recommendedMemoryInGB, totalQueries,
    successQueries, successRate, averageLatencyInMs, latencyPercentile50/90/95/99/999InMs,
    measuredQueriesPerSecond, state, name, description, createdTime, error).

    How it is measured: a temporary service (one replica, the deployment target's) serves the
    models; each row is POSTed to it through the server's gateway, one at a time, and its latency
    is the client's (the gateway and the replica included). The replica's scoring runtime
    reports its own CPU seconds and resident memory (getrusage and /proc/self/statm) in each
    answer's x-atelier-usage header when the request asks for it: maxUtilizedCpu is the highest
    CPU use in cores over windows of 0.25 s of requests, maxUtilizedMemoryInGB the replica's peak
    resident memory (init() included). The recommendations are these with 20 % headroom, rounded
    up to 0.1. The requested cpu and memory are given to the service as cpu_cores and
    memory_gb, which only the podman target enforces. Profiles are not stored on the server."""

    def __init__(self, workspace, name, _new=False):
        if not _new:
            raise NotImplementedError("profiles are not stored on the atelier server: keep the ModelProfile "
                                      "Model.profile returned (its get_details())")
        self.workspace = workspace
        self.name = name
        self.description = None
        self.state = "NotStarted"
        self.error = None
        self.created_time = None
        self.requested_cpu = None
        self.requested_memory = None
        self._details = {}
        self._lines = []
        self._thread = None

    @classmethod
    def _start(cls, workspace, name, models, inference_config, input_dataset, cpu, memory_in_gb, description):
        import datetime

        if not isinstance(name, str) or not name.strip():
            raise ValueError("Model.profile needs a profile name")
        if inference_config is None:
            raise ValueError("Model.profile needs an inference_config (InferenceConfig(entry_script, ...))")
        cpu = DEFAULT_PROFILE_CPU if cpu is None else float(cpu)
        memory = DEFAULT_PROFILE_MEMORY if memory_in_gb is None else float(memory_in_gb)
        if not MIN_PROFILE_CPU <= cpu <= MAX_PROFILE_CPU:
            raise ValueError("cpu must be between %s and %s cores, not %s" % (MIN_PROFILE_CPU, MAX_PROFILE_CPU, cpu))
        if not MIN_PROFILE_MEMORY <= memory <= MAX_PROFILE_MEMORY:
            raise ValueError("memory_in_gb must be between %s and %s, not %s" % (MIN_PROFILE_MEMORY,
                                                                                 MAX_PROFILE_MEMORY, memory))
        rows = _request_rows(input_dataset)
        p = cls(workspace, name, _new=True)
        p.description = description
        p.requested_cpu, p.requested_memory = cpu, memory
        p.created_time = datetime.datetime.now(datetime.timezone.utc)
        p.state = "Running"
        p._details = p._base()
        p._thread = threading.Thread(target=p._run, args=(list(models or []), inference_config, rows),
                                     name="atelier-profile-" + name, daemon=True)
        p._thread.start()
        return p

    def _say(self, line):
        self._lines.append(line)

    def _base(self):
        d = {"name": self.name, "description": self.description, "state": self.state,
             "createdTime": self.created_time.isoformat() if self.created_time else None,
             "requestedCpu": self.requested_cpu, "requestedMemoryInGB": self.requested_memory}
        if self.error:
            d["error"] = self.error
        return d

    def _run(self, models, inference_config, rows):
        from .model import Model

        service = None
        try:
            svc_name = _profile_service_name(self.name)
            self._say("profile %s: deploying a temporary service %s (%s cpu, %s GB requested)" % (
                self.name, svc_name, self.requested_cpu, self.requested_memory))
            service = Model.deploy(self.workspace, svc_name, models, inference_config,
                                   AciWebservice.deploy_configuration(cpu_cores=self.requested_cpu,
                                                                      memory_gb=self.requested_memory,
                                                                      description="Model.profile " + self.name))
            service.wait_for_deployment()
            self._say("profile %s: sending %d requests" % (self.name, len(rows)))
            details = self._measure(service, rows)
            self.state = "Succeeded"
            self._details = dict(self._base(), **details)
            self._say("profile %s: Succeeded" % self.name)
        except Exception as e:  # the profile says why
            self.state = "Failed"
            self.error = "%s: %s" % (type(e).__name__, e)
            if service is not None:
                try:
                    self.error += "\n" + service.get_logs(num_lines=30)
                except Exception:
                    pass
            self._details = self._base()
            self._say("profile %s: Failed: %s" % (self.name, self.error))
        finally:
            if service is not None:
                _delete_quietly(service)

    def _measure(self, service, rows):
        client = service._client
        path = "/services/%s/%s/score" % (quote_seg(service.workspace.name), quote_seg(service.name))
        headers = {"Content-Type": "application/json", "x-atelier-usage": "1"}
        if service.auth_enabled:
            headers["Authorization"] = "Bearer " + service.get_keys()[0]
        latencies, samples, ok = [], [], 0
        t_start = time.perf_counter()
        for body in rows:
            t0 = time.perf_counter()
            status, usage = _post(client, path, body, headers)
            t1 = time.perf_counter()
            latencies.append((t1 - t0) * 1000)
            if 200 <= status < 300:
                ok += 1
            if usage:
                samples.append((t1, usage))
        wall = time.perf_counter() - t_start
        out = {"totalQueries": len(rows), "successQueries": ok, "successRate": round(100.0 * ok / len(rows), 2),
               "averageLatencyInMs": round(sum(latencies) / len(latencies), 3),
               "measuredQueriesPerSecond": round(len(rows) / wall, 3) if wall > 0 else None}
        ordered = sorted(latencies)
        for key, q in (("50", 50), ("90", 90), ("95", 95), ("99", 99), ("999", 99.9)):
            out["latencyPercentile%sInMs" % key] = round(_percentile(ordered, q), 3)
        cpu = _max_cpu(samples)
        mem = max((max(u.get("rss", 0), u.get("maxrss", 0)) for _, u in samples), default=None)
        out["maxUtilizedCpu"] = None if cpu is None else round(cpu, 4)
        out["maxUtilizedMemoryInGB"] = None if mem is None else round(mem / _GB, 4)
        out["recommendedCpu"] = None if cpu is None else _headroom(cpu)
        out["recommendedMemoryInGB"] = None if mem is None else _headroom(mem / _GB)
        return out

    def wait_for_completion(self, show_output=False):
        """Waits until the profile Succeeded or Failed, printing its progress with show_output."""
        shown = 0
        while True:
            done = self._thread is None or not self._thread.is_alive()
            if show_output:
                for line in self._lines[shown:]:
                    print(line)
                shown = len(self._lines)
            if done:
                break
            self._thread.join(0.2)
        return self

    def get_details(self):
        """Azure's detail keys: the measurements once Succeeded, the error once Failed."""
        if self.state in ("NotStarted", "Running"):
            return self._base()
        return dict(self._details)

    def serialize(self):
        return self.get_details()

    @property
    def recommended_cpu(self):
        return self._details.get("recommendedCpu")

    @property
    def recommended_memory(self):
        return self._details.get("recommendedMemoryInGB")

    def __repr__(self):
        return "ModelProfile(workspace=%s, name=%s, state=%s)" % (self.workspace.name, self.name, self.state)


def _profile_service_name(profile_name):
    import uuid

    base = re.sub(r"[^a-z0-9]+", "-", profile_name.lower()).strip("-")
    if not base or not base[0].isalpha():
        base = "profile-" + base
    return (base[:25].rstrip("-") + "-" + uuid.uuid4().hex[:6])


def _request_rows(data):
    """The request bodies a profile sends: the rows of a one-column tabular dataset (each row's
    text is a body, as Azure's profiler sends it), or a list of str/bytes."""
    if data is None:
        raise ValueError("Model.profile needs input_dataset: a one-column TabularDataset whose rows are request "
                         "bodies (Dataset.Tabular.from_delimited_files(path, separator='\\n', header=NO_HEADERS))")
    if isinstance(data, (str, bytes)):
        data = [data]
    if isinstance(data, (list, tuple)):
        rows = [r.encode("utf-8") if isinstance(r, str) else bytes(r) for r in data]
    elif hasattr(data, "_request_rows"):
        rows = [r.encode("utf-8") for r in data._request_rows()]
    elif hasattr(data, "to_pandas_dataframe"):
        df = data.to_pandas_dataframe()
        if len(df.columns) != 1:
            raise ValueError("input_dataset must have one column (each row a request body), not %d" % len(df.columns))
        rows = [str(v).encode("utf-8") for v in df.iloc[:, 0]]
    else:
        raise TypeError("input_dataset is a TabularDataset or a list of request bodies, not %s" % type(data).__name__)
    if not rows:
        raise ValueError("input_dataset has no rows: a profile sends each row as a request")
    return rows


def _post(client, path, body, headers):
    """(status, usage dict or None) of a scoring request sent on the client's connection."""
    import http.client

    conn = client._conn()
    try:
        conn.request("POST", client.url(path), body=body, headers=client.headers(headers))
        resp = conn.getresponse()
        resp.read()
    except (OSError, http.client.HTTPException):
        client._drop_conn()
        raise
    if resp.will_close:
        client._drop_conn()
    usage = None
    h = resp.getheader("x-atelier-usage")
    if h:
        usage = {}
        for part in h.split(";"):
            k, _, v = part.strip().partition("=")
            try:
                usage[k] = float(v)
            except ValueError:
                pass
    return resp.status, usage


def _percentile(ordered, q):
    if not ordered:
        return 0.0
    k = max(0, min(len(ordered) - 1, int(math.ceil(q / 100.0 * len(ordered))) - 1))
    return ordered[k]


def _max_cpu(samples):
    """The highest CPU use (cores) over windows of at least _CPU_WINDOW s; over all the samples
    when they span less."""
    samples = [(t, u["cpu"]) for t, u in samples if "cpu" in u]
    if len(samples) < 2:
        return None
    best, start = None, samples[0]
    for t, c in samples[1:]:
        if t - start[0] >= _CPU_WINDOW:
            rate = (c - start[1]) / (t - start[0])
            best = rate if best is None else max(best, rate)
            start = (t, c)
    if best is None:
        (t0, c0), (t1, c1) = samples[0], samples[-1]
        best = (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
    return max(best, 0.0)


def _headroom(v):
    return max(MIN_PROFILE_CPU, math.ceil(v * 1.2 * 10 - 1e-9) / 10)


def _delete_quietly(service):
    """Deletes a profile's service, then its image once the service no longer holds it."""
    from .image import Image

    images = service.images
    try:
        service.delete()
    except AtelierError:
        return
    for ref in images:
        deadline = time.monotonic() + 30
        while True:
            try:
                Image(service.workspace, ref).delete()
                break
            except AtelierError as e:
                if e.status != 409 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
