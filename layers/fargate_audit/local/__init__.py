"""Local tooling, outside the Lambda layer: emulated AWS estates (``estate``), the demo
(``demo``) and running a Lambda handler on this machine (``invoke``).

Needs the ``[local]`` extra (moto, aws-lambda-powertools): ``pip install 'fargate-audit[local]'``.
The layer build (layers/Makefile) leaves this package out.
"""
