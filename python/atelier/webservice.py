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
defaults, as in Azure ML (ACI: one replica, no auth; AKS: autoscaling, key auth).
"""

import json
import re
import sys
import time

from ._http import ActivityFailedError, AtelierError, quote_seg

__all__ = ["AciWebservice", "AksWebservice", "DeploymentConfiguration", "LocalWebservice", "Webservice",
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
        return Webservice.deploy_from_image(workspace, name, image, deployment_config, deployment_target, overwrite)

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
               models=None, **kwargs):
        """Changes the service: a new image is a rolling update (no request fails); the
        configuration's fields given replace the service's. Wait with wait_for_deployment."""
        body = {}
        if image is not None:
            body["image"] = _image_ref(image)
        elif inference_config is not None:
            from .image import Image

            img = Image.create(self.workspace, self.name + "-image", models or [], inference_config)
            img.wait_for_creation()
            body["image"] = _image_ref(img)
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
        return self

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


def _path(workspace, name):
    return "/api/v1/workspaces/%s/services/%s" % (quote_seg(workspace.name), quote_seg(name))
