"""Token, revocation and introspection endpoints (RFC 6749 section 3.2, RFC 7009, RFC 7662).

All three are Authlib's; responses carry ``Cache-Control: no-store``.
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app

bp = Blueprint("token", __name__)


@bp.route("/token", methods=["POST"])
def token():
    return current_app.extensions["idp.oauth"].create_token_response()


@bp.route("/revoke", methods=["POST"])
def revoke():
    return current_app.extensions["idp.oauth"].create_endpoint_response("revocation")


@bp.route("/introspect", methods=["POST"])
def introspect():
    return current_app.extensions["idp.oauth"].create_endpoint_response("introspection")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
