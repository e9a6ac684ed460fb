"""runengine.cli: the ``runengine`` command line and the IPython session it starts."""
