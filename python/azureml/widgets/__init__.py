"""azureml.widgets: v1's RunDetails notebook widget, as text: show() prints the run's status,
metrics and children (atelier's web UI shows them too, at run.get_portal_url())."""

__all__ = ["RunDetails"]


class RunDetails:
    def __init__(self, run_instance):
        self.run = run_instance

    def show(self):
        r = self.run
        print("Run %s (%s): %s" % (r.id, getattr(r.experiment, "name", ""), r.get_status()))
        url = r.get_portal_url() if hasattr(r, "get_portal_url") else None
        if url:
            print("  %s" % url)
        for k, v in sorted((r.get_metrics() or {}).items()):
            print("  %s: %s" % (k, v))
        for c in r.get_children() if hasattr(r, "get_children") else []:
            print("  child %s: %s" % (c.id, c.get_status()))

    def get_widget_data(self, widget_settings=None):
        return {"status": self.run.get_status(), "metrics": self.run.get_metrics()}
