"""The serving stack as flow steps: serve.deploy (deploy.py), serve.rag and serve.smoke (stack.py)."""
