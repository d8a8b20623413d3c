# A sample's own image with the sandbox agent layered on: what Cloud Run runs for a sample whose
# environment is an image. The agent is the static binary of the sandbox base image, so nothing
# of the sample's image is needed to run it, and the sample's files stay as they are.
#
# Built with an empty context:  scripts/sandbox-image.sh sample <sample image> <target> <base image>
ARG BASE_IMAGE
ARG SAMPLE_IMAGE

FROM ${BASE_IMAGE} AS agent

FROM ${SAMPLE_IMAGE}
COPY --from=agent /usr/local/bin/codeset /usr/local/bin/codeset
ENTRYPOINT ["/usr/local/bin/codeset", "sandboxd", "--init"]
# The sample's own command would become arguments of the agent.
CMD []
