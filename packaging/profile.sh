# /etc/profile.d/strangler.sh: strangler's commands read the packaged config
# unless told otherwise (--config, or STRANGLER_CONFIG set already).
: "${STRANGLER_CONFIG:=/etc/strangler/routes.yaml}"
export STRANGLER_CONFIG
