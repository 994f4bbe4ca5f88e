from tests.conftest import authorize_params, exchange, get_code


def test_portal_code_flow_issues_tokens_and_userinfo(client, user):
    params, verifier = authorize_params()
    result = get_code(client, params)
    assert result["state"] == params["state"]
    assert result["iss"] == "http://localhost"
    resp = exchange(client, result["code"], verifier)
    assert resp.status_code == 200, resp.json
    tokens = resp.json
    assert {"access_token", "id_token", "refresh_token"} <= set(tokens)
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert info.status_code == 200, info.json
    assert info.json["sub"] == user
