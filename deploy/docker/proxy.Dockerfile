# The authenticating proxy of the compose stack: nginx (Debian's nginx-light) running the shipped rules of
# deploy/nginx/iiko-pipeline.conf, rendered at start by deploy/nginx/render.py with the stack's addresses. The
# certificate and the two password files come from a read-only mount (/run/iiko-proxy), never from the image.
ARG BASE=iiko-pipeline-base:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default
COPY deploy/nginx/iiko-pipeline.conf deploy/nginx/render.py /opt/iiko-proxy/
COPY deploy/docker/proxy-entrypoint.sh /usr/local/bin/proxy-entrypoint.sh
ENTRYPOINT ["/usr/local/bin/proxy-entrypoint.sh"]
