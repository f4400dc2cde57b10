from django.db import models


class Order(models.Model):
    """An order, and the execution of the workflow that fulfils it."""

    customer = models.CharField(max_length=100)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=20, default="placed")
    execution_id = models.CharField(max_length=36, blank=True)
