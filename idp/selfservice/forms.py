"""The forms of the self-service pages (Flask-WTF: every form carries its CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from idp.accounts.customers import valid_card_number


def card_number_check(_form, field) -> None:
    """A mistyped card number (wrong length or check digit, Luhn) is refused on the form: it
    says nothing about who is a customer, and "a code was sent" would leave the person waiting."""
    if field.data and not valid_card_number(field.data):
        raise ValidationError(_l("This card number is not valid. Check the digits on your card."))


class IdentifyForm(FlaskForm):
    card_number = StringField(validators=[DataRequired(), Length(max=32), card_number_check])
    birthdate = DateField(validators=[DataRequired()])


def card_error(form: FlaskForm) -> str | None:
    """The card number's own message when that is what is wrong."""
    field = getattr(form, "card_number", None)
    return str(field.errors[-1]) if field is not None and field.data and field.errors else None


class OpenIdentifyForm(FlaskForm):
    given_name = StringField(validators=[DataRequired(), Length(max=200)])
    family_name = StringField(validators=[DataRequired(), Length(max=200)])
    birthdate = DateField(validators=[DataRequired()])
    mobile = StringField(validators=[DataRequired(), Length(max=40)])


class CodeForm(FlaskForm):
    code = StringField(validators=[Length(max=16)])


class AccountForm(FlaskForm):
    username = StringField(validators=[DataRequired(), Length(max=128)])
    password = PasswordField(validators=[DataRequired(), Length(max=1024)])
    password_repeat = PasswordField(validators=[DataRequired(), Length(max=1024)])


class ContactForm(FlaskForm):
    email = EmailField(validators=[DataRequired(), Length(max=320)])
    email_repeat = EmailField(validators=[DataRequired(), Length(max=320)])
    accept_terms = BooleanField()
