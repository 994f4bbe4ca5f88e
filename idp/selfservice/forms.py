"""The forms of the self-service pages (Flask-WTF: every form carries its CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class IdentifyForm(FlaskForm):
    card_number = StringField(validators=[DataRequired(), Length(max=32)])
    birthdate = DateField(validators=[DataRequired()])


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
