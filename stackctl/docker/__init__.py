"""The Docker Engine and Compose as the stack drives them: engine queries, compose
runs, image pulls/builds, throwaway containers over volumes, and health waits.

The only package that talks to Docker; absolute `import docker` inside it is the SDK."""
