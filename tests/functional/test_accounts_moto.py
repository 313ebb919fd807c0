"""Which accounts an organization scan covers, and one assumed-role session per account
(edge/accounts.py), on moto's Organizations and STS."""

import boto3
import pytest
from fargate_audit.core.errors import ConfigError
from fargate_audit.edge import aws
from fargate_audit.edge.accounts import (
    AssumeRoleError,
    MemberSessions,
    assume_error,
    member_role_arn,
    organization_accounts,
    parse_account_ids,
    read_accounts_file,
)
from moto import mock_aws

REGION = "eu-west-1"


def test_account_ids_from_arguments_are_split_deduplicated_and_checked():
    ids = parse_account_ids(["111111111111,222222222222", "111111111111"])
    assert ids == ["111111111111", "222222222222"]
    with pytest.raises(ConfigError, match=r"--accounts: '12345' is not a 12-digit account id"):
        parse_account_ids(["111111111111,12345"])


def test_accounts_file_skips_comments_and_names_the_bad_line(tmp_path):
    good = tmp_path / "accounts.txt"
    good.write_text("# prod\n111111111111\n\n222222222222  # payments\n111111111111\n")
    assert read_accounts_file(good) == ["111111111111", "222222222222"]
    bad = tmp_path / "bad.txt"
    bad.write_text("111111111111\n22222222222x\n")
    with pytest.raises(ConfigError, match=r"bad.txt:2: '22222222222x' is not a 12-digit account id"):
        read_accounts_file(bad)
    with pytest.raises(ConfigError, match="cannot read the accounts file"):
        read_accounts_file(tmp_path / "missing.txt")


def test_an_accounts_file_saved_with_a_byte_order_mark_reads_its_first_line(tmp_path):
    saved = tmp_path / "accounts.txt"
    saved.write_bytes("111111111111\r\n222222222222\r\n".encode("utf-8-sig"))  # as Windows editors save

    assert read_accounts_file(saved) == ["111111111111", "222222222222"]


def test_an_accounts_file_saved_as_utf16_is_read_and_other_bytes_are_one_error(tmp_path):
    saved = tmp_path / "accounts.txt"
    saved.write_bytes("111111111111\r\n222222222222\r\n".encode("utf-16"))  # PowerShell's `>`
    assert read_accounts_file(saved) == ["111111111111", "222222222222"]
    saved.write_bytes(b"\x80\x81 111111111111\n")
    with pytest.raises(ConfigError, match=r"accounts.txt: the accounts file is not UTF-8 text"):
        read_accounts_file(saved)


def test_member_role_arn_follows_the_partition():
    assert member_role_arn("111111111111", "r", "eu-west-1") == "arn:aws:iam::111111111111:role/r"
    assert member_role_arn("111111111111", "r", "cn-north-1") == "arn:aws-cn:iam::111111111111:role/r"


@pytest.fixture
def org(monkeypatch):
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("organizations", region_name="us-east-1")
        client.create_organization(FeatureSet="ALL")
        root = client.list_roots()["Roots"][0]["Id"]
        ou = client.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
        child = client.create_organizational_unit(ParentId=ou, Name="prod")["OrganizationalUnit"]["Id"]
        made = []
        for name in ("a", "b", "c"):
            created = client.create_account(AccountName=name, Email=f"{name}@example.com")
            made.append(created["CreateAccountStatus"]["AccountId"])
        client.move_account(AccountId=made[0], SourceParentId=root, DestinationParentId=ou)
        client.move_account(AccountId=made[1], SourceParentId=root, DestinationParentId=child)
        yield client, root, ou, made


def test_organization_accounts_lists_the_active_ones_or_those_under_an_ou(org):
    client, _root, ou, made = org
    everything = organization_accounts(client)
    assert set(made) <= set(everything) and everything == sorted(everything)
    assert organization_accounts(client, [ou]) == sorted(made[:2])  # the OU and its child OU


def test_one_assume_role_per_account_and_the_own_account_uses_the_caller(monkeypatch):
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        source = aws.Session(region_name=REGION)
        sessions = MemberSessions(source, "auditor", "ext-123", own_account="123456789012")
        first = sessions.get("111111111111")
        assert sessions.get("111111111111") is first and sessions.assumed == 1
        assert sessions.get("123456789012") is source and sessions.assumed == 1
        sts = aws.client(first, "sts", REGION)
        assert sts.get_caller_identity()["Account"] == "111111111111"  # moto: the role's account
        sessions.get("222222222222")
        assert sessions.assumed == 2


def test_a_refused_assume_role_is_one_line_naming_the_call():
    exc = aws.ClientError({"Error": {"Code": "AccessDenied", "Message": "not trusted"}}, "AssumeRole")
    line = assume_error(exc, "arn:aws:iam::111111111111:role/auditor")
    assert line == "sts:AssumeRole: AccessDenied: not trusted (arn:aws:iam::111111111111:role/auditor)"
    with pytest.raises(ConfigError, match="not an IAM role name"):
        MemberSessions(aws.Session(region_name=REGION), "bad name!")


def test_a_refused_role_is_one_assume_role_error_and_the_next_get_asks_again(monkeypatch):
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    asked = []

    def refuse(params=None, **_):
        asked.append(params["RoleArn"])
        if len(asked) == 1:
            error = {"Error": {"Code": "AccessDenied", "Message": "not  trusted"}}
            raise aws.ClientError(error, "AssumeRole")

    with mock_aws():
        source = aws.Session(region_name=REGION)
        source._session.register("before-parameter-build.sts.AssumeRole", refuse)
        sessions = MemberSessions(source, "auditor", "ext-123")
        with pytest.raises(AssumeRoleError) as refused:
            sessions.get("111111111111")
        assert str(refused.value) == (
            "sts:AssumeRole: AccessDenied: not trusted (arn:aws:iam::111111111111:role/auditor)"
        )
        assert refused.value.account == "111111111111"
        session = sessions.get("111111111111")  # the refusal is not kept: STS is asked again
        assert sessions.get("111111111111") is session
        assert asked == ["arn:aws:iam::111111111111:role/auditor"] * 2


def test_an_accounts_file_breaks_lines_only_at_line_ends(tmp_path):
    """A form feed, NEL or U+2028 in a comment or between ids does not start a new line
    (str.splitlines would): the line numbers are an editor's, and one line is one id."""
    saved = tmp_path / "accounts.txt"
    saved.write_text("# prod\x0c accounts\u0085 (eu)\n111111111111\r222222222222\n", encoding="utf-8")
    assert read_accounts_file(saved) == ["111111111111", "222222222222"]
    saved.write_text("# prod\x0c accounts\n12345\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"accounts.txt:2: '12345' is not a 12-digit account id"):
        read_accounts_file(saved)
    saved.write_text("111111111111\u2028222222222222\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"accounts.txt:1: '111111111111\\u2028222222222222' is not"):
        read_accounts_file(saved)
