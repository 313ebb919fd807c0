"""What the tests (and the benchmarks) share; importable as ``support`` (pyproject's pytest
``pythonpath`` puts tests/ on sys.path; a bench script adds it itself).

- ``support.postures``: the documented example posture (tests/fixtures) and ``open_port_22``.
- ``support.demo``: ``tell``, a demo story told with a hostile environment around it.
- ``support.template``: the repository's template.yaml, read through the library's helpers.
- ``support.env``: the emulated account's ids and the functions' environment (``ENV``).
- ``support.sessions``: boto3 sessions sharing one botocore data loader (tests/conftest.py
  installs it for the whole suite: service models parsed once per worker).
- ``support.spies``: ``Spy`` (Powertools-like logger and metrics), ``CallLog`` (every AWS
  call of a session), ``LambdaContext``, ``sqs_record``.
- ``support.world``: the handlers' emulated account (``build_world``, ``emulated_world``):
  table from the template, Security Hub, queues and a small estate, with a spied runtime.
- ``support.wire``: AWS's answers in each protocol's wire format (``error_response``) and
  ``ExpiredTokens`` (the emulator answering an account's calls with an expired token).

Nothing here imports pytest: a module-scoped fixture and a bench script use it alike.
"""
